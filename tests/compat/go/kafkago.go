package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/Shopify/sarama"
	kafka "github.com/segmentio/kafka-go"
)

// Debian bookworm packages kafka-go 0.2.1, which speaks Kafka 0.10's protocol: its Writer
// produces with Produce v2 and message format v1 (magic 1), its Reader fetches with Fetch v2,
// and Conn.CreateTopics sends CreateTopics v0. Runnel implements record batches (magic 2)
// only, Produce from v3, Fetch from v4 and CreateTopics from v2 (RELIABILITY.md: such
// requests close the connection; magic 0/1 batches are refused). Its Conn metadata, offset
// and DeleteTopics calls use versions Runnel has, so those are tested.
const kafkaGoOldProtocol = "kafka-go 0.2.1 (Debian) uses Produce v2 / Fetch v2 / CreateTopics v0 and message format v1, which Runnel documents as unsupported (RELIABILITY.md)"

func kafkaGoTests() []testCase {
	return []testCase{
		{name: "kafka-go Conn: ReadPartitions, ReadOffsets, DeleteTopics", run: testKafkaGoConn},
		{name: "kafka-go Conn: CreateTopics", run: testKafkaGoCreateTopics, skip: kafkaGoOldProtocol},
		{name: "kafka-go Writer/Reader round trip through a group", run: testKafkaGoWriterReader, skip: kafkaGoOldProtocol},
	}
}

func testKafkaGoConn(ctx context.Context, env *testEnv) error {
	topic := env.name("go-kafkago-conn")
	if err := createTopic(env, topic, 3); err != nil {
		return err
	}
	msgs := makeMessages(topic, "kafkago", 30)
	if _, err := produceSync(env, producerConfig(sarama.WaitForAll, sarama.CompressionNone), msgs); err != nil {
		return err
	}
	counts := map[int]int64{}
	for _, m := range msgs {
		counts[int(m.Partition)]++
	}

	conn, err := kafka.DialContext(ctx, "tcp", env.bootstrap)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return fmt.Errorf("read partitions: %w", err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	host, portText, _ := net.SplitHostPort(env.bootstrap)
	port, _ := strconv.Atoi(portText)
	if len(parts) != 3 {
		return fmt.Errorf("read partitions: %d partitions, want 3: %+v", len(parts), parts)
	}
	for i, p := range parts {
		if p.Topic != topic || p.ID != i || p.Leader.Host != host || p.Leader.Port != port || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			return fmt.Errorf("read partitions: partition %d is %+v (broker at %s)", i, p, env.bootstrap)
		}
	}

	for _, p := range parts {
		pconn, err := kafka.DialLeader(ctx, "tcp", env.bootstrap, topic, p.ID)
		if err != nil {
			return fmt.Errorf("dial leader of partition %d: %w", p.ID, err)
		}
		first, last, err := pconn.ReadOffsets()
		pconn.Close()
		if err != nil {
			return fmt.Errorf("read offsets of partition %d: %w", p.ID, err)
		}
		if first != 0 || last != counts[p.ID] {
			return fmt.Errorf("partition %d offsets [%d, %d), want [0, %d)", p.ID, first, last, counts[p.ID])
		}
	}

	if err := conn.DeleteTopics(topic); err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	if err := conn.DeleteTopics(topic); err == nil {
		return fmt.Errorf("deleting it again succeeded, want UNKNOWN_TOPIC_OR_PARTITION")
	}
	return nil
}

func testKafkaGoCreateTopics(ctx context.Context, env *testEnv) error {
	conn, err := kafka.DialContext(ctx, "tcp", env.bootstrap)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	return conn.CreateTopics(kafka.TopicConfig{Topic: env.name("go-kafkago-create"), NumPartitions: 2, ReplicationFactor: 1})
}

func testKafkaGoWriterReader(ctx context.Context, env *testEnv) error {
	topic := env.name("go-kafkago-rw")
	if err := createTopic(env, topic, 2); err != nil {
		return err
	}
	w := kafka.NewWriter(kafka.WriterConfig{Brokers: []string{env.bootstrap}, Topic: topic, Balancer: &kafka.Hash{}})
	defer w.Close()
	var sent []kafka.Message
	for i := 0; i < 20; i++ {
		sent = append(sent, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	if err := w.WriteMessages(ctx, sent...); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{env.bootstrap}, Topic: topic, GroupID: env.name("go-kafkago-group")})
	defer r.Close()
	seen := map[string]string{}
	for len(seen) < len(sent) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		seen[string(m.Value)] = string(m.Key)
	}
	for _, m := range sent {
		if seen[string(m.Value)] != string(m.Key) {
			return fmt.Errorf("%s: key %q, want %q", m.Value, seen[string(m.Value)], m.Key)
		}
	}
	return nil
}
