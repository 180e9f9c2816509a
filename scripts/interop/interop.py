"""The CloudEvents Python SDK side of eventkit's interop tests.

Run by run-python.sh (interop/foreign_test.go starts it), one process per
direction; it prints {"ready": "python"} once the SDK is imported. Events travel between the Go test and this program in a typed
description (interop/events_test.go, type "described"):

    {"attributes": {"<name>": {"type": "<CloudEvents type>", "value": "<canonical string>"}, ...},
     "data_base64": "<the data's bytes>"}

write: reads one JSON line on stdin,
    {"sends": [{"via": "http", "url": U, "mode": "binary"|"structured", "events": [...]},
               {"via": "kafka", "bootstrap": B, "topic": T, "mode": ..., "events": [...]},
               {"via": "amqp", "url": U, "exchange": X, "routing_key": K, "mode": ..., "events": [...]}]}
  builds each event with the SDK from its description (native Python types:
  int, bool, datetime, bytes for binary data, dict for JSON data, str for
  text), sends it with the SDK's binding, and prints {"done": true}.

read: serves HTTP on a free loopback port and prints {"listening": URL};
  every request is read with the SDK (from_http; a batch, which the SDK does
  not read, is split and each element read with its JSON format) and each
  event printed as {"via": "http", "mode": M, "event": <description>}. Each
  stdin line {"via": "kafka", "bootstrap": B, "topic": T, "count": N}
  consumes N records of topic T from its start and prints each the same way
  (via "kafka"). Each stdin line {"via": "amqp", "url": U, "exchange": X,
  "routing_key": K, "count": N} binds a queue of its own to X with K, prints
  {"bound": K}, and reads N messages with the SDK's RabbitMQ binding. It
  stops when stdin closes.
"""

import base64
import json
import re
import sys
import threading
import http.client
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloudevents.core.bindings import http as cehttp
from cloudevents.core.bindings import kafka as cekafka
from cloudevents.core.bindings import rabbitmq as cerabbit
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

FORMAT = JSONFormat()
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def parse_time(s):
    """An RFC 3339 time as a datetime: Python keeps microseconds, so the
    fraction is cut to six digits (docs/interop.md)."""
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        raise ValueError("not an RFC 3339 time: " + s)
    frac = (m.group(2) or "")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone)


def format_time(t):
    s = t.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def is_json(ct):
    return ct is not None and FORMAT.JSON_CONTENT_TYPE_PATTERN.match(ct) is not None


def build(d):
    """The SDK event for a description, with native Python types."""
    attrs = {}
    for name, tv in d["attributes"].items():
        t, v = tv["type"], tv["value"]
        if t == "timestamp":
            attrs[name] = parse_time(v)
        elif t == "integer":
            attrs[name] = int(v)
        elif t == "boolean":
            attrs[name] = v == "true"
        elif t == "binary":
            attrs[name] = base64.b64decode(v)
        else:
            attrs[name] = v
    data = None
    if d.get("data_base64") is not None:
        raw = base64.b64decode(d["data_base64"])
        ct = attrs.get("datacontenttype")
        if is_json(ct):
            data = json.loads(raw)
        elif ct is not None and ct.startswith("text/"):
            data = raw.decode("utf-8")
        else:
            data = raw
    return CloudEvent(attrs, data)


def typed(v):
    if isinstance(v, bool):
        return {"type": "boolean", "value": "true" if v else "false"}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, (bytes, bytearray)):
        return {"type": "binary", "value": base64.b64encode(v).decode()}
    if isinstance(v, datetime):
        return {"type": "timestamp", "value": format_time(v.astimezone(timezone.utc))}
    return {"type": "string", "value": str(v)}


def describe(ev):
    """The description of an event the SDK read, with the types it gave."""
    attrs = {k: typed(v) for k, v in ev.get_attributes().items() if v is not None}
    data = ev.get_data()
    out = {"attributes": attrs}
    if data is not None:
        if isinstance(data, (bytes, bytearray)):
            raw = bytes(data)
        elif isinstance(data, str):
            raw = data.encode("utf-8")
        else:
            raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        out["data_base64"] = base64.b64encode(raw).decode()
    return out


def send_http(s):
    # http.client, not urllib: urllib adds a Content-Type of its own to a
    # request without one (an event without datacontenttype).
    u = urllib.parse.urlsplit(s["url"])
    for d in s["events"]:
        ev = build(d)
        msg = cehttp.to_binary(ev, FORMAT) if s["mode"] == "binary" else cehttp.to_structured(ev, FORMAT)
        conn = http.client.HTTPConnection(u.netloc, timeout=30)
        conn.request("POST", u.path, body=msg.body, headers=msg.headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status // 100 != 2:
            raise SystemExit("POST %s (%s): %d %s" % (d["attributes"]["id"]["value"], s["mode"], resp.status, body.decode()))


def send_kafka(s, producers):
    from kafka import KafkaProducer

    p = producers.get(s["bootstrap"])
    if p is None:
        p = producers[s["bootstrap"]] = KafkaProducer(bootstrap_servers=s["bootstrap"], acks="all")
    for d in s["events"]:
        ev = build(d)
        msg = cekafka.to_binary(ev, FORMAT) if s["mode"] == "binary" else cekafka.to_structured(ev, FORMAT)
        key = msg.key.encode("utf-8") if isinstance(msg.key, str) else msg.key
        p.send(s["topic"], value=msg.value, key=key, headers=list(msg.headers.items())).get(timeout=30)


def send_amqp(s):
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(s["url"]))
    ch = conn.channel()
    ch.confirm_delivery()
    for d in s["events"]:
        ev = build(d)
        msg = cerabbit.to_binary(ev, FORMAT) if s["mode"] == "binary" else cerabbit.to_structured(ev, FORMAT)
        props = pika.BasicProperties(content_type=msg.content_type, headers=msg.headers or None, delivery_mode=2)
        ch.basic_publish(s["exchange"], s["routing_key"], msg.body, props, mandatory=True)
    conn.close()


def write():
    spec = json.loads(sys.stdin.readline())
    producers = {}
    for s in spec["sends"]:
        if s["via"] == "http":
            send_http(s)
        elif s["via"] == "kafka":
            send_kafka(s, producers)
        elif s["via"] == "amqp":
            send_amqp(s)
        else:
            raise SystemExit("unknown via " + s["via"])
    for p in producers.values():
        p.flush()
        p.close()
    emit({"done": True})


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        ct = self.headers.get("Content-Type", "")
        try:
            if ct.startswith("application/cloudevents-batch+json"):
                mode = "batch"
                events = [FORMAT.read(None, json.dumps(e)) for e in json.loads(body)]
            else:
                mode = "structured" if ct.startswith("application/cloudevents") else "binary"
                events = [cehttp.from_http(cehttp.HTTPMessage(headers=headers, body=body), FORMAT)]
        except Exception as e:  # the test prints what the SDK refused
            emit({"via": "http", "error": "%s: %s" % (type(e).__name__, e)})
            self.send_response(400)
            self.end_headers()
            return
        for ev in events:
            emit({"via": "http", "mode": mode, "event": describe(ev)})
        self.send_response(204)
        self.end_headers()


def read_kafka(req):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=req["bootstrap"], enable_auto_commit=False, group_id=None)
    parts = [TopicPartition(req["topic"], p) for p in sorted(c.partitions_for_topic(req["topic"]) or [])]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    n = 0
    while n < req["count"]:
        for records in c.poll(timeout_ms=1000).values():
            for r in records:
                msg = cekafka.KafkaMessage(headers={k: v for k, v in (r.headers or [])}, key=r.key, value=r.value)
                ev = cekafka.from_kafka(msg, FORMAT)
                ct = msg.headers.get("content-type", b"").decode()
                mode = "structured" if ct.startswith("application/cloudevents") else "binary"
                emit({"via": "kafka", "mode": mode, "event": describe(ev)})
                n += 1
    c.close()


def read_amqp(req):
    """Binds a queue of its own to the exchange, prints {"bound": key}, then
    reads count messages with the SDK's RabbitMQ binding."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(req["url"]))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, req["exchange"], req["routing_key"])
    emit({"bound": req["routing_key"]})
    n = 0
    for method, props, body in ch.consume(q, inactivity_timeout=60):
        if method is None:
            raise SystemExit("no AMQP message within 60 s")
        msg = cerabbit.RabbitMQMessage(headers={k: str(v) for k, v in (props.headers or {}).items()},
                                       content_type=props.content_type, body=body)
        ct = props.content_type or ""
        mode = "structured" if ct.startswith("application/cloudevents") else "binary"
        try:
            emit({"via": "amqp", "mode": mode, "event": describe(cerabbit.from_rabbitmq(msg, FORMAT))})
        except Exception as e:  # the test prints what the SDK refused
            emit({"via": "amqp", "error": "%s: %s" % (type(e).__name__, e)})
        ch.basic_ack(method.delivery_tag)
        n += 1
        if n == req["count"]:
            break
    conn.close()


def read():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    emit({"listening": "http://127.0.0.1:%d/" % srv.server_address[1]})
    for line in sys.stdin:
        if line.strip():
            req = json.loads(line)
            if req["via"] == "amqp":
                read_amqp(req)
            else:
                read_kafka(req)
    srv.shutdown()


if __name__ == "__main__":
    # The test times each step from here: starting Python and importing
    # the SDK take long on a busy machine.
    emit({"ready": "python"})
    {"read": read, "write": write}[sys.argv[1]]()
