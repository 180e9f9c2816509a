// Runner runs Debezium's embedded engine for eventkit's parity tests
// (postgres/pgcdc/debezium_*_test.go) and writes each change event to
// stdout as one JSON line:
//
//   {"destination":"<topic>","key":<key JSON or null>,"value":<value JSON or null>,
//    "headers":{"<name>":<header JSON>,...}}
//
// key, value and headers are the bytes of Kafka Connect's JsonConverter as
// the engine gives them (with schemas, unless the properties say otherwise);
// a tombstone has "value":null. With eventkit.format=cloudevents the value
// is the JSON of Debezium's CloudEvents converter instead.
//
// Usage: java -cp <classpath> Runner.java <connector.properties>
// The properties file holds the engine's and the connector's settings.
// A line {"started":true} is written when the connector's task has
// started; the runner stops on SIGTERM or when stdin closes.
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.Header;
import io.debezium.engine.format.CloudEvents;
import io.debezium.engine.format.Json;

import java.io.FileReader;
import java.io.PrintStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

public class Runner {
    static final PrintStream out = new PrintStream(
            new java.io.BufferedOutputStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), 1 << 16),
            false, StandardCharsets.UTF_8);

    static synchronized void line(String s) {
        out.print(s);
        out.print('\n');
        out.flush();
    }

    // record writes a record's line; the batch's end flushes them.
    static synchronized void record(String s) {
        out.print(s);
        out.print('\n');
    }

    static synchronized void flush() {
        out.flush();
    }

    static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        b.append('"');
    }

    static void raw(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof byte[]) {
            b.append(new String((byte[]) v, StandardCharsets.UTF_8));
        } else {
            b.append(v.toString());
        }
    }

    static void write(ChangeEvent<String, String> e) {
        StringBuilder b = new StringBuilder(1024);
        b.append("{\"destination\":");
        quote(b, e.destination());
        b.append(",\"key\":");
        raw(b, e.key());
        b.append(",\"value\":");
        raw(b, e.value());
        b.append(",\"headers\":{");
        List<Header<Object>> hs = e.headers();
        boolean first = true;
        if (hs != null) {
            for (Header<Object> h : hs) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                quote(b, h.getKey());
                b.append(':');
                raw(b, h.getValue());
            }
        }
        b.append("}}");
        record(b.toString());
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (Reader r = new FileReader(args[0], StandardCharsets.UTF_8)) {
            props.load(r);
        }
        boolean ce = "cloudevents".equals(props.getProperty("eventkit.format"));
        props.remove("eventkit.format");
        DebeziumEngine.Builder<ChangeEvent<String, String>> builder = ce
                ? DebeziumEngine.create(Json.class, CloudEvents.class, Json.class)
                : DebeziumEngine.create(Json.class, Json.class, Json.class);
        DebeziumEngine<ChangeEvent<String, String>> engine = builder
                .using(props)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        line("{\"started\":true}");
                    }
                })
                .using((success, message, error) -> {
                    StringBuilder b = new StringBuilder("{\"completed\":");
                    b.append(success).append(",\"message\":");
                    quote(b, String.valueOf(message));
                    if (error != null) {
                        b.append(",\"error\":");
                        quote(b, error.toString());
                    }
                    b.append('}');
                    line(b.toString());
                })
                .notifying((records, committer) -> {
                    for (ChangeEvent<String, String> e : records) {
                        write(e);
                        committer.markProcessed(e);
                    }
                    flush();
                    committer.markBatchFinished();
                })
                .build();
        ExecutorService exec = Executors.newSingleThreadExecutor();
        exec.execute(engine);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
                exec.shutdown();
                exec.awaitTermination(10, TimeUnit.SECONDS);
            } catch (Exception ignored) {
            }
        }));
        // Stop when the parent closes stdin (the test ended or died).
        while (System.in.read() >= 0) {
        }
        engine.close();
        exec.shutdown();
        exec.awaitTermination(10, TimeUnit.SECONDS);
        System.exit(0);
    }
}
