package main

import (
	"context"
	"fmt"

	"github.com/Shopify/sarama"
)

func saramaConsumerTests() []testCase {
	return []testCase{
		{name: "sarama partition consumer: oldest, newest, an explicit offset, offsets by timestamp", run: testPartitionConsumer},
	}
}

func testPartitionConsumer(ctx context.Context, env *testEnv) error {
	topic := env.name("go-consumer")
	if err := createTopic(env, topic, 1); err != nil {
		return err
	}
	client, err := sarama.NewClient([]string{env.bootstrap}, producerConfig(sarama.WaitForAll, sarama.CompressionNone))
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer client.Close()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer producer.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()

	first := makeMessages(topic, "first", 5)
	if err := producer.SendMessages(first); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if oldest, err := client.GetOffset(topic, 0, sarama.OffsetOldest); err != nil || oldest != 0 {
		return fmt.Errorf("oldest offset %d (%v), want 0", oldest, err)
	}
	if newest, err := client.GetOffset(topic, 0, sarama.OffsetNewest); err != nil || newest != 5 {
		return fmt.Errorf("newest offset %d (%v), want 5", newest, err)
	}

	// From the newest offset: only what is produced after the consumer started.
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("consume from newest: %w", err)
	}
	defer pc.AsyncClose() // on an early return; closing twice is harmless
	second := makeMessages(topic, "second", 3)
	if err := producer.SendMessages(second); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	for i, want := range second {
		select {
		case got := <-pc.Messages():
			if err := sameRecord(want, got); err != nil {
				return fmt.Errorf("from newest, message %d: %w", i, err)
			}
		case err := <-pc.Errors():
			return fmt.Errorf("from newest: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("from newest: %d of %d messages before the deadline", i, len(second))
		}
	}

	// sarama allows one consumer per partition at a time.
	if err := pc.Close(); err != nil {
		return fmt.Errorf("close the consumer from newest: %w", err)
	}
	all := append(first, second...)
	got, err := readPartition(ctx, consumer, topic, 0, sarama.OffsetOldest, len(all))
	if err != nil {
		return err
	}
	for i := range all {
		if err := sameRecord(all[i], got[i]); err != nil {
			return fmt.Errorf("from oldest: %w", err)
		}
	}
	got, err = readPartition(ctx, consumer, topic, 0, 3, len(all)-3)
	if err != nil {
		return err
	}
	for i := range got {
		if err := sameRecord(all[3+i], got[i]); err != nil {
			return fmt.Errorf("from offset 3: %w", err)
		}
	}
	if _, err := consumer.ConsumePartition(topic, 0, int64(len(all)+10)); err != sarama.ErrOffsetOutOfRange {
		return fmt.Errorf("consume past the end: %v, want OFFSET_OUT_OF_RANGE", err)
	}

	// ListOffsets by timestamp: the first offset whose timestamp is >= the one asked for.
	// Both batches used the same timestamps (base + i ms), so base + 2 ms is offset 2.
	at, err := client.GetOffset(topic, 0, all[2].Timestamp.UnixNano()/1e6)
	if err != nil || at != 2 {
		return fmt.Errorf("offset for timestamp %s: %d (%v), want 2", all[2].Timestamp, at, err)
	}
	return nil
}
