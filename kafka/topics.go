package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

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
	k, err := t.d.cfg.mapper.ToKafka(name)
	if err != nil {
		return err
	}
	return t.d.createKafkaTopic(ctx, k, partitions, replicationFactor, configs)
}

func (d *drv) createKafkaTopic(ctx context.Context, k string, partitions int32, rf int16, configs map[string]*string) error {
	if _, ok := d.known.Load(k); ok {
		return nil
	}
	resp, err := d.adm.CreateTopic(ctx, partitions, rf, configs, k)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %q: %w", k, err)
	}
	// A broker answers CreateTopics before every broker's metadata shows
	// the topic; a produce in that window fails with
	// UNKNOWN_TOPIC_OR_PARTITION once the client's few retries are used up.
	// So the topic is usable when this returns, wait for its leaders (also
	// when another client created it a moment ago).
	if werr := d.waitTopicReady(ctx, k); werr != nil {
		return fmt.Errorf("kafka: create topic %q: %w", k, werr)
	}
	d.known.Store(k, struct{}{})
	if err == nil {
		// Let this transport's pattern subscriptions see the topic now.
		d.refreshSubscriptions()
	}
	return nil
}

// waitTopicReady polls the metadata of topic k until every partition has a
// leader, or ctx ends.
func (d *drv) waitTopicReady(ctx context.Context, k string) error {
	backoff := 10 * time.Millisecond
	for {
		details, err := d.adm.ListTopics(ctx, k)
		if err == nil {
			err = topicNotReady(details, k)
		}
		if err == nil {
			return nil
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for the topic's leaders: %w (last: %v)", ctx.Err(), err)
		case <-timer.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// topicNotReady returns why the metadata of k does not show it usable yet.
func topicNotReady(details kadm.TopicDetails, k string) error {
	d, ok := details[k]
	switch {
	case !ok:
		return kerr.UnknownTopicOrPartition
	case d.Err != nil:
		return d.Err
	case len(d.Partitions) == 0:
		return errors.New("no partitions yet")
	}
	for _, p := range d.Partitions {
		if p.Err != nil {
			return p.Err
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

// ensureTopic creates k when the transport creates topics.
func (d *drv) ensureTopic(ctx context.Context, k string) error {
	if !d.cfg.create {
		return nil
	}
	return d.createKafkaTopic(ctx, k, d.cfg.partitions, d.cfg.replication, d.cfg.topicConfigs)
}
