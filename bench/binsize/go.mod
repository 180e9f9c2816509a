module github.com/eventkit/eventkit/bench/binsize

go 1.26.0

require github.com/eventkit/eventkit v0.0.0

replace github.com/eventkit/eventkit => ../..
