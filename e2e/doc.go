// Package e2e holds the end-to-end tests of eventkit serve's web console
// (/console/), driven in headless Chromium with chromedp. It is a module
// of its own so that chromedp never becomes a dependency of eventkit's
// module; scripts/test.sh runs it after the others.
//
// The tests need Debian's chromium package (scripts/services.sh installs
// it when missing): without it they skip, naming it, or fail under
// CI=true. Screenshots go to $EVENTKIT_ARTIFACTS (default: a temporary
// directory, printed by the test).
package e2e
