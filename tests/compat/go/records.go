package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/Shopify/sarama"
)

// saramaVersion is the protocol level sarama is told the broker speaks: 2.1 is the first
// Kafka release with zstd, so sarama lets every codec it has through (though this sarama
// still sends zstd in Produce v3, which Kafka and Runnel refuse: see testZstdBeforeProduceV7).
var saramaVersion = sarama.V2_1_0_0

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = saramaVersion
	cfg.ClientID = "runnel-go-compat"
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func newAdmin(env *testEnv) (sarama.ClusterAdmin, error) {
	return sarama.NewClusterAdmin([]string{env.bootstrap}, saramaConfig())
}

// createTopic creates `topic` with `partitions` partitions through sarama's admin client.
func createTopic(env *testEnv, topic string, partitions int32) error {
	admin, err := newAdmin(env)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer admin.Close()
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// hashPartition is sarama's default (non-reference) hash partitioner, written out here so
// the test checks where sarama put each key instead of trusting it: FNV-1a 32 of the key,
// as int32, modulo the partition count, negated when negative.
func hashPartition(key []byte, partitions int32) int32 {
	h := fnv.New32a()
	h.Write(key)
	p := int32(h.Sum32()) % partitions
	if p < 0 {
		p = -p
	}
	return p
}

// baseTimestamp is an explicit producer timestamp (whole milliseconds) that must come back.
var baseTimestamp = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// makeMessages builds n keyed messages with headers (one of them with an empty value) and
// explicit timestamps; keys repeat so that each key's records share a partition.
func makeMessages(topic, tag string, n int) []*sarama.ProducerMessage {
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		value := fmt.Sprintf("%s-value-%03d-%s", tag, i, bytes.Repeat([]byte{'x'}, i%37))
		msgs[i] = &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("key-%d", i%11)),
			Value: sarama.StringEncoder(value),
			Headers: []sarama.RecordHeader{
				{Key: []byte("seq"), Value: []byte(fmt.Sprintf("%d", i))},
				{Key: []byte("tag"), Value: []byte(tag)},
				{Key: []byte("empty"), Value: []byte{}},
			},
			Timestamp: baseTimestamp.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return msgs
}

func encoded(e sarama.Encoder) []byte {
	if e == nil {
		return nil
	}
	b, err := e.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// checkPlacement checks every acknowledged message sits on the partition sarama's hash
// gives its key, and that offsets on each partition are contiguous from `start` in send order.
func checkPlacement(msgs []*sarama.ProducerMessage, partitions int32, start map[int32]int64) error {
	next := map[int32]int64{}
	for p, o := range start {
		next[p] = o
	}
	for i, m := range msgs {
		want := hashPartition(encoded(m.Key), partitions)
		if m.Partition != want {
			return fmt.Errorf("message %d key %q: partition %d, hash partitioner says %d", i, encoded(m.Key), m.Partition, want)
		}
		if m.Offset != next[m.Partition] {
			return fmt.Errorf("message %d on partition %d: offset %d, want %d (offsets in send order)", i, m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition]++
	}
	return nil
}

// byPartition groups acknowledged messages per partition in offset order.
func byPartition(msgs []*sarama.ProducerMessage) map[int32][]*sarama.ProducerMessage {
	out := map[int32][]*sarama.ProducerMessage{}
	for _, m := range msgs {
		out[m.Partition] = append(out[m.Partition], m)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Offset < list[j].Offset })
	}
	return out
}

// sameRecord compares every field a consumer sees with what was produced.
func sameRecord(want *sarama.ProducerMessage, got *sarama.ConsumerMessage) error {
	if got.Topic != want.Topic || got.Partition != want.Partition || got.Offset != want.Offset {
		return fmt.Errorf("got %s/%d@%d, want %s/%d@%d", got.Topic, got.Partition, got.Offset, want.Topic, want.Partition, want.Offset)
	}
	if !bytes.Equal(got.Key, encoded(want.Key)) {
		return fmt.Errorf("offset %d: key %q, want %q", got.Offset, got.Key, encoded(want.Key))
	}
	if !bytes.Equal(got.Value, encoded(want.Value)) {
		return fmt.Errorf("offset %d: value %q, want %q", got.Offset, got.Value, encoded(want.Value))
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Errorf("offset %d: %d headers, want %d", got.Offset, len(got.Headers), len(want.Headers))
	}
	for i, h := range want.Headers {
		g := got.Headers[i]
		if !bytes.Equal(g.Key, h.Key) || !bytes.Equal(g.Value, h.Value) {
			return fmt.Errorf("offset %d: header %d is %q=%q, want %q=%q", got.Offset, i, g.Key, g.Value, h.Key, h.Value)
		}
	}
	if !want.Timestamp.IsZero() && !got.Timestamp.Equal(want.Timestamp) {
		return fmt.Errorf("offset %d: timestamp %s, want %s", got.Offset, got.Timestamp, want.Timestamp)
	}
	return nil
}

// readPartition reads `n` messages of one partition from `offset` with a partition consumer.
func readPartition(ctx context.Context, consumer sarama.Consumer, topic string, partition int32, offset int64, n int) ([]*sarama.ConsumerMessage, error) {
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		return nil, fmt.Errorf("consume %s/%d from %d: %w", topic, partition, offset, err)
	}
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			return got, fmt.Errorf("consume %s/%d: %w", topic, partition, err)
		case <-ctx.Done():
			return got, fmt.Errorf("consume %s/%d: %d of %d messages before the deadline", topic, partition, len(got), n)
		}
	}
	return got, nil
}

// verifyRoundTrip reads every partition from the oldest offset and compares each record,
// in order, with the acknowledged messages; nothing more may follow on any partition.
func verifyRoundTrip(ctx context.Context, env *testEnv, msgs []*sarama.ProducerMessage, partitions int32) error {
	client, err := sarama.NewClient([]string{env.bootstrap}, saramaConfig())
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	topic := msgs[0].Topic
	parts := byPartition(msgs)
	for p := int32(0); p < partitions; p++ {
		want := parts[p]
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("newest offset of %s/%d: %w", topic, p, err)
		}
		if newest != int64(len(want)) {
			return fmt.Errorf("%s/%d: newest offset %d, %d messages were acknowledged", topic, p, newest, len(want))
		}
		if len(want) == 0 {
			continue
		}
		got, err := readPartition(ctx, consumer, topic, p, sarama.OffsetOldest, len(want))
		if err != nil {
			return err
		}
		for i := range want {
			if err := sameRecord(want[i], got[i]); err != nil {
				return fmt.Errorf("%s/%d: %w", topic, p, err)
			}
		}
	}
	return nil
}
