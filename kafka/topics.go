package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/eventkit/eventkit/topic"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicMapper maps eventkit topics to Kafka topics and back.
type TopicMapper interface {
	// ToKafka returns the Kafka topic of an eventkit topic name, or an
	// error if the name has no Kafka form.
	ToKafka(name string) (string, error)
	// FromKafka returns the eventkit topic of a Kafka topic, and false for
	// a Kafka topic outside the mapping.
	FromKafka(kafkaTopic string) (string, bool)
	// Regexp returns the regular expression of the Kafka topics that an
	// eventkit pattern matches.
	Regexp(pattern string) string
}

// PrefixMapper maps the eventkit topic "orders.eu" to the Kafka topic
// prefix + "orders.eu". Kafka topic names accept ASCII letters, digits,
// '.', '_' and '-' (so every eventkit token character but ':' and '@') and
// are at most 249 bytes long; a name outside that fails to map.
type PrefixMapper string

// maxKafkaTopic is the longest Kafka topic name.
const maxKafkaTopic = 249

// ToKafka implements TopicMapper.
func (p PrefixMapper) ToKafka(name string) (string, error) {
	k := string(p) + name
	if len(k) > maxKafkaTopic {
		return "", fmt.Errorf("kafka: topic %q: Kafka topic names are at most %d bytes: %w", name, maxKafkaTopic, topic.ErrInvalid)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", fmt.Errorf("kafka: topic %q: character %q is not allowed in a Kafka topic name: %w", name, rune(c), topic.ErrInvalid)
		}
	}
	if k == "." || k == ".." {
		return "", fmt.Errorf("kafka: topic %q is not a Kafka topic name: %w", name, topic.ErrInvalid)
	}
	return k, nil
}

// FromKafka implements TopicMapper.
func (p PrefixMapper) FromKafka(kafkaTopic string) (string, bool) {
	name, ok := strings.CutPrefix(kafkaTopic, string(p))
	if !ok || topic.ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

// Regexp implements TopicMapper.
func (p PrefixMapper) Regexp(pattern string) string {
	re := topic.Regexp(pattern).String() // "^...$"
	return "^" + regexp.QuoteMeta(string(p)) + re[1:]
}

// CreateTopic creates the Kafka topic of the eventkit topic name with the
// given partitions and replication factor (-1: the broker's default). A
// topic that exists already is not an error.
func (t *Transport) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, configs map[string]*string) error {
	if err := topic.ValidateName(name); err != nil {
		return err
	}
	k, err := t.cfg.mapper.ToKafka(name)
	if err != nil {
		return err
	}
	return t.createKafkaTopic(ctx, k, partitions, replicationFactor, configs)
}

func (t *Transport) createKafkaTopic(ctx context.Context, k string, partitions int32, rf int16, configs map[string]*string) error {
	if _, ok := t.known.Load(k); ok {
		return nil
	}
	resp, err := t.adm.CreateTopic(ctx, partitions, rf, configs, k)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %q: %w", k, err)
	}
	t.known.Store(k, struct{}{})
	if err == nil {
		// Let this transport's pattern subscriptions see the topic now.
		t.refreshSubscriptions()
	}
	return nil
}

// ensureTopic creates k when the transport creates topics.
func (t *Transport) ensureTopic(ctx context.Context, k string) error {
	if !t.cfg.create {
		return nil
	}
	return t.createKafkaTopic(ctx, k, t.cfg.partitions, t.cfg.replication, t.cfg.topicConfigs)
}

// Admin returns a kadm client on the transport's producer connection, for
// administration eventkit does not wrap.
func (t *Transport) Admin() *kadm.Client { return t.adm }
