// Package interop holds eventkit's interoperability tests with the official
// CloudEvents SDKs: Go (github.com/cloudevents/sdk-go/v2 and its protocol
// modules), Python (PyPI "cloudevents") and Java (Maven io.cloudevents). It
// has no code of its own; it is a module apart (interop/go.mod) so that the
// SDKs' protocol modules never become dependencies of eventkit's users.
//
// Each test, named TestInterop…, sends a set of events in both directions,
// the SDK writing and eventkit reading and the other way round, and compares
// every attribute with its type, every extension type (string, integer,
// boolean, binary, URI, timestamp), the time to the nanosecond and every data
// byte. What differs is either an eventkit defect or a property of the other
// SDK that docs/interop.md lists with its reason; the tests allow exactly
// those differences and nothing else.
//
// The Go SDK runs in the test binary. The Python and Java SDKs run as one
// child process per direction (Python) or one JVM for every case (Java),
// through scripts/interop/run-python.sh and scripts/interop/run-java.sh,
// which install the pinned SDKs (a virtualenv from PyPI, a classpath from
// Maven Central). Tests that need a server (NATS, Mosquitto, Kafka) or a
// tool (Python 3, Java, Maven) skip with a message naming it outside CI and
// fail under CI=true.
package interop
