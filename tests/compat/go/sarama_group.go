package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const groupPartitions = 4

func saramaGroupTests() []testCase {
	return []testCase{
		{name: "sarama consumer group: two members share partitions, commit, a restarted member resumes", run: testSaramaGroup},
	}
}

// groupLog is what every member of the test's group saw, shared by their handlers.
type groupLog struct {
	mu sync.Mutex
	// claims is each member's latest assignment (member name -> partitions).
	claims map[string][]int32
	// got holds every consumed message per partition, in the order it was handed over.
	got map[int32][]*sarama.ConsumerMessage
}

func (l *groupLog) snapshotClaims() map[string][]int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]int32{}
	for k, v := range l.claims {
		out[k] = append([]int32(nil), v...)
	}
	return out
}

func (l *groupLog) consumed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, msgs := range l.got {
		n += len(msgs)
	}
	return n
}

type member struct {
	name string
	log  *groupLog
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	var parts []int32
	for _, p := range s.Claims() {
		parts = append(parts, p...)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	m.log.mu.Lock()
	m.log.claims[m.name] = parts
	m.log.mu.Unlock()
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error {
	m.log.mu.Lock()
	m.log.claims[m.name] = nil
	m.log.mu.Unlock()
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.log.mu.Lock()
		m.log.got[msg.Partition] = append(m.log.got[msg.Partition], msg)
		m.log.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

// runningMember is one sarama ConsumerGroup calling Consume in a loop (it returns at
// every rebalance) until stopped.
type runningMember struct {
	group  sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func startMember(ctx context.Context, env *testEnv, groupID, topic, name string, log *groupLog) (*runningMember, error) {
	cfg := saramaConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	// A short heartbeat makes a member notice a rebalance quickly.
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	group, err := sarama.NewConsumerGroup([]string{env.bootstrap}, groupID, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: consumer group: %w", name, err)
	}
	mctx, cancel := context.WithCancel(ctx)
	rm := &runningMember{group: group, cancel: cancel, done: make(chan error, 1)}
	handler := &member{name: name, log: log}
	go func() {
		for mctx.Err() == nil {
			if err := group.Consume(mctx, []string{topic}, handler); err != nil {
				rm.done <- fmt.Errorf("%s: consume: %w", name, err)
				return
			}
		}
		rm.done <- nil
	}()
	go func() {
		for err := range group.Errors() {
			log.mu.Lock()
			fmt.Printf("    (%s: consumer group error: %v)\n", name, err)
			log.mu.Unlock()
		}
	}()
	return rm, nil
}

// stop ends the member's session (committing what it marked) and leaves the group.
// Only the first call does it; later ones (the deferred ones) return its result.
func (rm *runningMember) stop() error {
	rm.once.Do(func() {
		rm.cancel()
		rm.err = <-rm.done
		if cerr := rm.group.Close(); rm.err == nil {
			rm.err = cerr
		}
	})
	return rm.err
}

func waitFor(ctx context.Context, what string, cond func() (bool, string)) error {
	last := ""
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: deadline passed; last state: %s", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// assignmentIs checks the members' claims are disjoint and each has `each` partitions out of
// all groupPartitions.
func assignmentIs(log *groupLog, members []string, each int) func() (bool, string) {
	return func() (bool, string) {
		claims := log.snapshotClaims()
		seen := map[int32]bool{}
		for _, m := range members {
			if len(claims[m]) != each {
				return false, fmt.Sprint(claims)
			}
			for _, p := range claims[m] {
				if seen[p] {
					return false, fmt.Sprint(claims)
				}
				seen[p] = true
			}
		}
		return len(seen) == groupPartitions, fmt.Sprint(claims)
	}
}

func committedOffsets(env *testEnv, groupID, topic string) (map[int32]int64, error) {
	admin, err := newAdmin(env)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	parts := []int32{}
	for p := int32(0); p < groupPartitions; p++ {
		parts = append(parts, p)
	}
	resp, err := admin.ListConsumerGroupOffsets(groupID, map[string][]int32{topic: parts})
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		block := resp.GetBlock(topic, p)
		if block == nil || block.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("offset fetch %s/%d: %+v", topic, p, block)
		}
		out[p] = block.Offset
	}
	return out, nil
}

// checkConsumed compares what the group consumed per partition with what was produced:
// exactly the records, in offset order, starting at `from`.
func checkConsumed(log *groupLog, msgs []*sarama.ProducerMessage, from map[int32]int64) error {
	log.mu.Lock()
	defer log.mu.Unlock()
	want := byPartition(msgs)
	for p := int32(0); p < groupPartitions; p++ {
		var expect []*sarama.ProducerMessage
		for _, m := range want[p] {
			if m.Offset >= from[p] {
				expect = append(expect, m)
			}
		}
		got := log.got[p]
		if len(got) != len(expect) {
			return fmt.Errorf("partition %d: consumed %d messages, want %d (from offset %d)", p, len(got), len(expect), from[p])
		}
		for i := range expect {
			if err := sameRecord(expect[i], got[i]); err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
		}
	}
	return nil
}

func testSaramaGroup(ctx context.Context, env *testEnv) error {
	topic, groupID := env.name("go-group"), env.name("go-group")
	if err := createTopic(env, topic, groupPartitions); err != nil {
		return err
	}
	log := &groupLog{claims: map[string][]int32{}, got: map[int32][]*sarama.ConsumerMessage{}}

	a, err := startMember(ctx, env, groupID, topic, "a", log)
	if err != nil {
		return err
	}
	defer a.stop()
	if err := waitFor(ctx, "member a to own every partition", assignmentIs(log, []string{"a"}, groupPartitions)); err != nil {
		return err
	}
	b, err := startMember(ctx, env, groupID, topic, "b", log)
	if err != nil {
		return err
	}
	defer b.stop()
	if err := waitFor(ctx, "members a and b to share the partitions", assignmentIs(log, []string{"a", "b"}, groupPartitions/2)); err != nil {
		return err
	}

	msgs := makeMessages(topic, "group", 40)
	if _, err := produceSync(env, producerConfig(sarama.WaitForAll, sarama.CompressionSnappy), msgs); err != nil {
		return err
	}
	if err := waitFor(ctx, "the group to consume 40 messages", func() (bool, string) {
		n := log.consumed()
		return n >= len(msgs), fmt.Sprintf("%d consumed", n)
	}); err != nil {
		return err
	}
	zero := map[int32]int64{}
	if err := checkConsumed(log, msgs, zero); err != nil {
		return err
	}
	end := map[int32]int64{}
	for p, list := range byPartition(msgs) {
		end[p] = list[len(list)-1].Offset + 1
	}
	if err := waitFor(ctx, "commits to reach the end offsets", func() (bool, string) {
		got, err := committedOffsets(env, groupID, topic)
		if err != nil {
			return false, err.Error()
		}
		for p := int32(0); p < groupPartitions; p++ {
			if got[p] != end[p] {
				return false, fmt.Sprintf("committed %v, end %v", got, end)
			}
		}
		return true, ""
	}); err != nil {
		return err
	}

	// b leaves: a takes every partition back.
	if err := b.stop(); err != nil {
		return err
	}
	if err := waitFor(ctx, "member a to own every partition after b left", assignmentIs(log, []string{"a"}, groupPartitions)); err != nil {
		return err
	}
	if err := a.stop(); err != nil {
		return err
	}

	// Produced while nobody is in the group; a restarted member must read exactly these.
	more := makeMessages(topic, "after", 12)
	if _, err := produceSync(env, producerConfig(sarama.WaitForLocal, sarama.CompressionLZ4), more); err != nil {
		return err
	}
	log.mu.Lock()
	log.got = map[int32][]*sarama.ConsumerMessage{}
	log.mu.Unlock()
	a2, err := startMember(ctx, env, groupID, topic, "a", log)
	if err != nil {
		return err
	}
	defer a2.stop()
	if err := waitFor(ctx, "the restarted member to consume the 12 new messages", func() (bool, string) {
		n := log.consumed()
		return n >= len(more), fmt.Sprintf("%d consumed", n)
	}); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // anything re-delivered would show up by now
	if err := checkConsumed(log, append(msgs, more...), end); err != nil {
		return fmt.Errorf("after restart: %w", err)
	}
	return a2.stop()
}
