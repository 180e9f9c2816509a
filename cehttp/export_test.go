package cehttp

// SignRequestAt is SignRequest with the creation time given.
var SignRequestAt = signRequestAt
