// Interop is the CloudEvents Java SDK side of eventkit's interop tests
// (interop/foreign_test.go): one JVM for every case, driven by JSON lines on
// stdin, answering with JSON lines on stdout. Events travel in the typed
// description of interop/events_test.go:
//
//   {"attributes": {"<name>": {"type": "<CloudEvents type>", "value": "<canonical string>"}, ...},
//    "data_base64": "<the data's bytes>"}
//
// It prints {"ready":"java"} once it runs. Commands:
//   {"cmd":"send","tag":T,"via":"http","url":U,"mode":"binary"|"structured","events":[...]}
//   {"cmd":"send","tag":T,"via":"kafka","bootstrap":B,"topic":K,"mode":...,"events":[...]}
//       builds each event with the SDK (CloudEventBuilder, native Java types:
//       Integer, Boolean, byte[], URI, OffsetDateTime) and sends it with the
//       SDK's binding (cloudevents-http-basic on the JDK's HttpClient;
//       cloudevents-kafka's CloudEventSerializer); prints {"sent":T}.
//   {"cmd":"listen"}
//       serves HTTP on a free loopback port, prints {"listening":URL}; each
//       request is read with the SDK (a batch, which the SDK does not read,
//       is split and each element read with its JSON format) and printed as
//       {"via":"http","mode":M,"event":<description>}.
//   {"cmd":"consume","bootstrap":B,"topic":K,"count":N}
//       reads N records of K from its start with CloudEventDeserializer and
//       prints each ({"via":"kafka",...}), then {"consumed":K}.
// It stops when stdin closes.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import io.cloudevents.CloudEvent;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.core.message.MessageReader;
import io.cloudevents.http.HttpMessageFactory;
import io.cloudevents.jackson.JsonFormat;
import io.cloudevents.kafka.CloudEventDeserializer;
import io.cloudevents.kafka.CloudEventSerializer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

public class Interop {
    static final ObjectMapper json = new ObjectMapper();
    static final JsonFormat format = new JsonFormat();
    static final HttpClient http = HttpClient.newHttpClient();
    static final Map<String, KafkaProducer<String, CloudEvent>> producers = new HashMap<>();

    static synchronized void emit(JsonNode n) {
        System.out.println(n.toString());
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        // The test times each command from here: starting the JVM and
        // compiling this file take long on a busy machine.
        emit(json.createObjectNode().put("ready", "java"));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            JsonNode cmd = json.readTree(line);
            switch (cmd.get("cmd").asText()) {
                case "send" -> send(cmd);
                case "listen" -> listen();
                case "consume" -> consume(cmd);
                default -> throw new IllegalArgumentException("unknown command " + line);
            }
        }
        for (KafkaProducer<String, CloudEvent> p : producers.values()) p.close(Duration.ofSeconds(10));
        System.exit(0);
    }

    // build makes the SDK's event for a description.
    static CloudEvent build(JsonNode d) {
        CloudEventBuilder b = CloudEventBuilder.v1();
        String ct = null;
        var it = d.get("attributes").fields();
        while (it.hasNext()) {
            var e = it.next();
            String name = e.getKey(), type = e.getValue().get("type").asText(), v = e.getValue().get("value").asText();
            switch (name) {
                case "specversion" -> { }
                case "id" -> b.withId(v);
                case "source" -> b.withSource(URI.create(v));
                case "type" -> b.withType(v);
                case "subject" -> b.withSubject(v);
                case "dataschema" -> b.withDataSchema(URI.create(v));
                case "datacontenttype" -> ct = v;
                case "time" -> b.withTime(OffsetDateTime.parse(v));
                default -> {
                    switch (type) {
                        case "integer" -> b.withExtension(name, Integer.valueOf(v));
                        case "boolean" -> b.withExtension(name, Boolean.valueOf(v));
                        case "binary" -> b.withExtension(name, Base64.getDecoder().decode(v));
                        case "uri", "urireference" -> b.withExtension(name, URI.create(v));
                        case "timestamp" -> b.withExtension(name, OffsetDateTime.parse(v));
                        default -> b.withExtension(name, v);
                    }
                }
            }
        }
        JsonNode data = d.get("data_base64");
        if (data != null && !data.isNull()) {
            b.withData(ct, Base64.getDecoder().decode(data.asText()));
        } else if (ct != null) {
            b.withDataContentType(ct);
        }
        return b.build();
    }

    static ObjectNode typed(Object v) {
        ObjectNode n = json.createObjectNode();
        String type, value;
        if (v instanceof Boolean x) { type = "boolean"; value = x.toString(); }
        else if (v instanceof Integer || v instanceof Long) { type = "integer"; value = v.toString(); }
        else if (v instanceof byte[] x) { type = "binary"; value = Base64.getEncoder().encodeToString(x); }
        else if (v instanceof URI x) { type = "uri"; value = x.toString(); }
        else if (v instanceof OffsetDateTime x) {
            type = "timestamp";
            value = x.withOffsetSameInstant(ZoneOffset.UTC).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        } else if (v instanceof String || v instanceof io.cloudevents.SpecVersion) { type = "string"; value = v.toString(); }
        else { type = v.getClass().getName(); value = v.toString(); }
        n.put("type", type);
        n.put("value", value);
        return n;
    }

    // describe is the description of an event the SDK read, with the Java
    // types it gave each attribute.
    static ObjectNode describe(CloudEvent e) {
        ObjectNode attrs = json.createObjectNode();
        for (String name : e.getAttributeNames()) {
            Object v = e.getAttribute(name);
            if (v != null) attrs.set(name, typed(v));
        }
        for (String name : e.getExtensionNames()) {
            Object v = e.getExtension(name);
            if (v != null) attrs.set(name, typed(v));
        }
        ObjectNode n = json.createObjectNode();
        n.set("attributes", attrs);
        if (e.getData() != null) n.put("data_base64", Base64.getEncoder().encodeToString(e.getData().toBytes()));
        return n;
    }

    static void send(JsonNode cmd) throws Exception {
        String mode = cmd.get("mode").asText();
        for (JsonNode d : cmd.get("events")) {
            CloudEvent e = build(d);
            if (cmd.get("via").asText().equals("http")) {
                sendHTTP(cmd.get("url").asText(), mode, e);
            } else {
                producer(cmd.get("bootstrap").asText(), mode)
                        .send(new ProducerRecord<>(cmd.get("topic").asText(), e)).get();
            }
        }
        emit(json.createObjectNode().put("sent", cmd.get("tag").asText()));
    }

    static void sendHTTP(String url, String mode, CloudEvent e) throws Exception {
        HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30));
        byte[][] body = new byte[1][];
        var w = HttpMessageFactory.createWriter(req::header, b -> body[0] = b);
        if (mode.equals("binary")) w.writeBinary(e);
        else w.writeStructured(e, format);
        var resp = http.send(req.POST(HttpRequest.BodyPublishers.ofByteArray(body[0] == null ? new byte[0] : body[0])).build(),
                HttpResponse.BodyHandlers.ofString());
        if (resp.statusCode() / 100 != 2) {
            throw new IllegalStateException("POST " + e.getId() + " (" + mode + "): " + resp.statusCode() + " " + resp.body());
        }
    }

    static KafkaProducer<String, CloudEvent> producer(String bootstrap, String mode) {
        return producers.computeIfAbsent(bootstrap + " " + mode, k -> {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, CloudEventSerializer.class);
            p.put(CloudEventSerializer.ENCODING_CONFIG, mode.equals("binary") ? "BINARY" : "STRUCTURED");
            p.put(CloudEventSerializer.EVENT_FORMAT_CONFIG, JsonFormat.CONTENT_TYPE);
            return new KafkaProducer<>(p);
        });
    }

    static void listen() throws Exception {
        HttpServer srv = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        srv.createContext("/", ex -> {
            byte[] body = ex.getRequestBody().readAllBytes();
            Map<String, List<String>> headers = new HashMap<>();
            ex.getRequestHeaders().forEach(headers::put);
            String ct = ex.getRequestHeaders().getFirst("Content-Type");
            int status = 204;
            try {
                List<CloudEvent> events = new ArrayList<>();
                String mode;
                if (ct != null && ct.startsWith("application/cloudevents-batch+json")) {
                    mode = "batch";
                    for (JsonNode el : (ArrayNode) json.readTree(body)) {
                        events.add(format.deserialize(json.writeValueAsBytes(el)));
                    }
                } else {
                    mode = ct != null && ct.startsWith("application/cloudevents") ? "structured" : "binary";
                    MessageReader r = HttpMessageFactory.createReaderFromMultimap(headers, body);
                    events.add(r.toEvent());
                }
                for (CloudEvent e : events) {
                    ObjectNode n = json.createObjectNode().put("via", "http").put("mode", mode);
                    n.set("event", describe(e));
                    emit(n);
                }
            } catch (RuntimeException err) {
                emit(json.createObjectNode().put("via", "http").put("error", err.toString()));
                status = 400;
            }
            ex.sendResponseHeaders(status, -1);
            ex.close();
        });
        srv.start();
        emit(json.createObjectNode().put("listening", "http://127.0.0.1:" + srv.getAddress().getPort() + "/"));
    }

    static void consume(JsonNode cmd) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, cmd.get("bootstrap").asText());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, CloudEventDeserializer.class);
        String topic = cmd.get("topic").asText();
        int count = cmd.get("count").asInt();
        try (KafkaConsumer<String, CloudEvent> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> parts = new ArrayList<>();
            c.partitionsFor(topic).forEach(pi -> parts.add(new TopicPartition(topic, pi.partition())));
            c.assign(parts);
            c.seekToBeginning(parts);
            int n = 0;
            while (n < count) {
                for (ConsumerRecord<String, CloudEvent> r : c.poll(Duration.ofSeconds(1))) {
                    n++;
                    if (r.value() == null) {
                        // The deserializer gives null for a record without a
                        // value (a tombstone).
                        var id = r.headers().lastHeader("ce_id");
                        emit(json.createObjectNode().put("via", "kafka").put("error", "record at offset " + r.offset()
                                + " (ce_id " + (id == null ? "none" : new String(id.value(), StandardCharsets.UTF_8)) + ") read as null"));
                        continue;
                    }
                    var ct = r.headers().lastHeader("content-type");
                    String mode = ct != null && new String(ct.value(), StandardCharsets.UTF_8).startsWith("application/cloudevents") ? "structured" : "binary";
                    ObjectNode o = json.createObjectNode().put("via", "kafka").put("mode", mode);
                    o.set("event", describe(r.value()));
                    emit(o);
                }
            }
        }
        emit(json.createObjectNode().put("consumed", topic));
    }
}
