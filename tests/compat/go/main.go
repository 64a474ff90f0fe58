// Command runnel-go-compat runs the Go client compatibility tests (Shopify/sarama and
// segmentio/kafka-go, as Debian packages them) against the broker at $RUNNEL_BOOTSTRAP.
//
// It prints one line per test ("ok - …", "not ok - …" followed by the reason, "skip - … # why")
// and closes with "go: N passed, M failed, K skipped" (the contract tests/compat/run_compat.py
// reads, the same as kcat.sh's); it exits non-zero on any failure.
//
//	runnel-go-compat [-run REGEXP] [-unsupported]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// testTimeout bounds every test: a broken broker must fail the suite, not hang it.
const testTimeout = 45 * time.Second

type testCase struct {
	name string
	run  func(ctx context.Context, env *testEnv) error
	// skip, when set, is why the test is not run: a feature Runnel documents as unsupported.
	skip string
}

type testEnv struct {
	bootstrap string
	// unique makes topic and group names distinct between runs against one broker.
	unique string
}

func (e *testEnv) name(base string) string { return base + "-" + e.unique }

func allTests() []testCase {
	var tests []testCase
	tests = append(tests, saramaAdminTests()...)
	tests = append(tests, saramaProduceTests()...)
	tests = append(tests, saramaConsumerTests()...)
	tests = append(tests, saramaGroupTests()...)
	tests = append(tests, kafkaGoTests()...)
	return tests
}

func main() {
	only := flag.String("run", "", "run only the tests whose name matches this regexp")
	unsupported := flag.Bool("unsupported", false, "also run the tests skipped as unsupported")
	flag.Parse()
	bootstrap := os.Getenv("RUNNEL_BOOTSTRAP")
	if bootstrap == "" {
		bootstrap = "127.0.0.1:9092"
	}
	filter := regexp.MustCompile(*only)
	env := &testEnv{bootstrap: bootstrap, unique: fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)}

	passed, failed, skipped := 0, 0, 0
	for _, tc := range allTests() {
		if !filter.MatchString(tc.name) {
			continue
		}
		if tc.skip != "" && !*unsupported {
			fmt.Printf("skip - %s # %s\n", tc.name, tc.skip)
			skipped++
			continue
		}
		started := time.Now()
		err := runBounded(tc, env)
		took := time.Since(started).Seconds()
		if err != nil {
			fmt.Printf("not ok - %s (%.1f s)\n", tc.name, took)
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Printf("    %s\n", line)
			}
			failed++
		} else {
			fmt.Printf("ok - %s (%.1f s)\n", tc.name, took)
			passed++
		}
	}
	fmt.Printf("go: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 {
		os.Exit(1)
	}
}

// runBounded runs one test with a deadline; a test that ignores its context still fails
// on time (its goroutine is abandoned: the process exits at the end anyway).
func runBounded(tc testCase, env *testEnv) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- tc.run(ctx, env)
	}()
	select {
	case err = <-done:
		return err
	case <-time.After(testTimeout + 5*time.Second):
		return fmt.Errorf("timed out after %s", testTimeout+5*time.Second)
	}
}
