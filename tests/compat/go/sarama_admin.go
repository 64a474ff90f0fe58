package main

import (
	"context"
	"fmt"
	"time"

	"github.com/Shopify/sarama"
)

func saramaAdminTests() []testCase {
	return []testCase{
		{name: "sarama admin: create, list, describe, delete a topic", run: testSaramaAdmin},
	}
}

func testSaramaAdmin(ctx context.Context, env *testEnv) error {
	admin, err := newAdmin(env)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer admin.Close()
	topic := env.name("go-admin")
	retention := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	err = admin.CreateTopic(topic, detail, false)
	if kerr, ok := err.(*sarama.TopicError); !ok || kerr.Err != sarama.ErrTopicAlreadyExists {
		return fmt.Errorf("creating it again: %v, want TOPIC_ALREADY_EXISTS", err)
	}

	topics, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	listed, ok := topics[topic]
	if !ok {
		return fmt.Errorf("list topics: %s missing from %d topics", topic, len(topics))
	}
	if listed.NumPartitions != 3 || listed.ReplicationFactor != 1 {
		return fmt.Errorf("list topics: %s has %d partitions, replication %d; want 3, 1", topic, listed.NumPartitions, listed.ReplicationFactor)
	}
	if v := listed.ConfigEntries["retention.ms"]; v == nil || *v != retention {
		return fmt.Errorf("list topics: %s configs %v, want retention.ms=%s among them", topic, listed.ConfigEntries, retention)
	}

	described, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return fmt.Errorf("describe topics: %w", err)
	}
	if len(described) != 1 || described[0].Err != sarama.ErrNoError || described[0].Name != topic {
		return fmt.Errorf("describe topics: %+v", described)
	}
	for i, p := range described[0].Partitions {
		if p.ID != int32(i) || p.Err != sarama.ErrNoError || len(p.Replicas) != 1 || len(p.Isr) != 1 || p.Leader != p.Replicas[0] {
			return fmt.Errorf("describe topics: partition %d is %+v", i, p)
		}
	}
	if len(described[0].Partitions) != 3 {
		return fmt.Errorf("describe topics: %d partitions, want 3", len(described[0].Partitions))
	}

	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
	if err != nil {
		return fmt.Errorf("describe config: %w", err)
	}
	if len(entries) != 1 || entries[0].Name != "retention.ms" || entries[0].Value != retention || entries[0].Default {
		return fmt.Errorf("describe config: %+v, want retention.ms=%s (not default)", entries, retention)
	}

	if err := admin.DeleteTopic(topic); err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	for {
		topics, err := admin.ListTopics()
		if err != nil {
			return fmt.Errorf("list topics after delete: %w", err)
		}
		if _, ok := topics[topic]; !ok {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still listed after delete", topic)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := admin.DeleteTopic(topic); err != sarama.ErrUnknownTopicOrPartition {
		return fmt.Errorf("deleting it again: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	return nil
}
