package main

import (
	"context"
	"fmt"
	"time"

	"github.com/Shopify/sarama"
)

var codecs = []struct {
	name  string
	codec sarama.CompressionCodec
}{
	{"none", sarama.CompressionNone},
	{"gzip", sarama.CompressionGZIP},
	{"snappy", sarama.CompressionSnappy},
	{"lz4", sarama.CompressionLZ4},
}

const produceMessages = 60
const producePartitions = 3

func saramaProduceTests() []testCase {
	var tests []testCase
	for _, c := range codecs {
		codec, name := c.codec, c.name
		tests = append(tests,
			testCase{name: fmt.Sprintf("sarama SyncProducer acks=all %s: keys, headers, timestamps round-trip", c.name),
				run: func(ctx context.Context, env *testEnv) error {
					return testProduce(ctx, env, "go-sync-all-"+name, sarama.WaitForAll, codec, false)
				}},
			testCase{name: fmt.Sprintf("sarama AsyncProducer acks=1 %s: keys, headers, timestamps round-trip", c.name),
				run: func(ctx context.Context, env *testEnv) error {
					return testProduce(ctx, env, "go-async-one-"+name, sarama.WaitForLocal, codec, true)
				}},
		)
	}
	tests = append(tests,
		testCase{name: "sarama AsyncProducer acks=all gzip: keys, headers, timestamps round-trip",
			run: func(ctx context.Context, env *testEnv) error {
				return testProduce(ctx, env, "go-async-all-gzip", sarama.WaitForAll, sarama.CompressionGZIP, true)
			}},
		testCase{name: "sarama SyncProducer acks=1 lz4: keys, headers, timestamps round-trip",
			run: func(ctx context.Context, env *testEnv) error {
				return testProduce(ctx, env, "go-sync-one-lz4", sarama.WaitForLocal, sarama.CompressionLZ4, false)
			}},
		testCase{name: "sarama idempotent SyncProducer (InitProducerId, sequences) lz4: exactly once, in order",
			run: testIdempotent},
		testCase{name: "sarama 1.22 zstd in Produce v3: UNSUPPORTED_COMPRESSION_TYPE, as Kafka answers it",
			run: testZstdBeforeProduceV7},
	)
	return tests
}

func producerConfig(acks sarama.RequiredAcks, codec sarama.CompressionCodec) *sarama.Config {
	cfg := saramaConfig()
	cfg.Producer.RequiredAcks = acks
	cfg.Producer.Compression = codec
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	// Batches of several records, so that each codec compresses more than one record.
	cfg.Producer.Flush.Messages = 8
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	return cfg
}

func testProduce(ctx context.Context, env *testEnv, base string, acks sarama.RequiredAcks, codec sarama.CompressionCodec, async bool) error {
	topic := env.name(base)
	if err := createTopic(env, topic, producePartitions); err != nil {
		return err
	}
	msgs := makeMessages(topic, base, produceMessages)
	cfg := producerConfig(acks, codec)
	var acked []*sarama.ProducerMessage
	var err error
	if async {
		acked, err = produceAsync(ctx, env, cfg, msgs)
	} else {
		acked, err = produceSync(env, cfg, msgs)
	}
	if err != nil {
		return err
	}
	if err := checkPlacement(acked, producePartitions, nil); err != nil {
		return err
	}
	return verifyRoundTrip(ctx, env, acked, producePartitions)
}

func produceSync(env *testEnv, cfg *sarama.Config, msgs []*sarama.ProducerMessage) ([]*sarama.ProducerMessage, error) {
	producer, err := sarama.NewSyncProducer([]string{env.bootstrap}, cfg)
	if err != nil {
		return nil, fmt.Errorf("sync producer: %w", err)
	}
	defer producer.Close()
	if err := producer.SendMessages(msgs); err != nil {
		return nil, fmt.Errorf("send messages: %w", err)
	}
	return msgs, nil
}

// produceAsync sends every message through the async producer and returns them in the
// order their successes came back (per partition that is the order they were written).
func produceAsync(ctx context.Context, env *testEnv, cfg *sarama.Config, msgs []*sarama.ProducerMessage) ([]*sarama.ProducerMessage, error) {
	producer, err := sarama.NewAsyncProducer([]string{env.bootstrap}, cfg)
	if err != nil {
		return nil, fmt.Errorf("async producer: %w", err)
	}
	defer producer.Close()
	go func() {
		for _, m := range msgs {
			producer.Input() <- m
		}
	}()
	var acked []*sarama.ProducerMessage
	for len(acked) < len(msgs) {
		select {
		case m := <-producer.Successes():
			acked = append(acked, m)
		case perr := <-producer.Errors():
			return nil, fmt.Errorf("async produce: %w", perr.Err)
		case <-ctx.Done():
			return nil, fmt.Errorf("async produce: %d of %d acknowledged before the deadline", len(acked), len(msgs))
		}
	}
	// Send order is the order the test must see per partition: successes may interleave
	// across partitions but not within one.
	return orderedLike(msgs, acked)
}

// orderedLike checks `acked` holds exactly `sent` and returns `sent` (now carrying partitions
// and offsets), so placement is checked against the order messages were handed to sarama.
func orderedLike(sent, acked []*sarama.ProducerMessage) ([]*sarama.ProducerMessage, error) {
	seen := map[*sarama.ProducerMessage]bool{}
	for _, m := range acked {
		if seen[m] {
			return nil, fmt.Errorf("message acknowledged twice: %s", encoded(m.Value))
		}
		seen[m] = true
	}
	for _, m := range sent {
		if !seen[m] {
			return nil, fmt.Errorf("message never acknowledged: %s", encoded(m.Value))
		}
	}
	return sent, nil
}

func testIdempotent(ctx context.Context, env *testEnv) error {
	topic := env.name("go-idempotent")
	if err := createTopic(env, topic, producePartitions); err != nil {
		return err
	}
	cfg := producerConfig(sarama.WaitForAll, sarama.CompressionLZ4)
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 5
	producer, err := sarama.NewSyncProducer([]string{env.bootstrap}, cfg)
	if err != nil {
		return fmt.Errorf("idempotent producer: %w", err)
	}
	defer producer.Close()
	var acked []*sarama.ProducerMessage
	for round := 0; round < 3; round++ {
		// Several SendMessages calls on one producer: its sequence numbers keep counting.
		msgs := makeMessages(topic, fmt.Sprintf("idem%d", round), produceMessages/3)
		if err := producer.SendMessages(msgs); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		acked = append(acked, msgs...)
	}
	if err := checkPlacement(acked, producePartitions, nil); err != nil {
		return err
	}
	return verifyRoundTrip(ctx, env, acked, producePartitions)
}

// testZstdBeforeProduceV7: sarama before 1.26 sends zstd batches in Produce v3, which Kafka
// (KIP-110: zstd needs Produce v7) refuses with UNSUPPORTED_COMPRESSION_TYPE; so must Runnel,
// and the refusal must reach sarama as that error, not as a closed connection.
func testZstdBeforeProduceV7(ctx context.Context, env *testEnv) error {
	topic := env.name("go-zstd-v3")
	if err := createTopic(env, topic, 1); err != nil {
		return err
	}
	cfg := producerConfig(sarama.WaitForAll, sarama.CompressionZSTD)
	producer, err := sarama.NewSyncProducer([]string{env.bootstrap}, cfg)
	if err != nil {
		return fmt.Errorf("sync producer: %w", err)
	}
	defer producer.Close()
	msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("zstd")}
	_, _, err = producer.SendMessage(msg)
	if err != sarama.ErrUnsupportedCompressionType {
		return fmt.Errorf("zstd in Produce v3: got %v, want %v", err, sarama.ErrUnsupportedCompressionType)
	}
	return nil
}
