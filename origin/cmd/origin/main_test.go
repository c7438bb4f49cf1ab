package main

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestRunBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "fast"}, "--rate"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--break-after", "-1"}, "--break-after"},
		{[]string{"--status", "42"}, "status 42"},
		{[]string{"--delay", "2h"}, "delay"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		if code := run(tc.args, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and a message with %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestRunListenError(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--listen", "256.0.0.1:1"}, &stderr); code != 1 || !strings.Contains(stderr.String(), "listening") {
		t.Errorf("run with a bad address = %d, %q; want 1 and a listen error", code, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunGracefulShutdown(t *testing.T) {
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"--listen", "127.0.0.1:0"}, &stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "listening") {
		if time.Now().After(deadline) {
			t.Fatalf("origin did not start: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stderr.String(), "shutting down") {
			t.Errorf("after SIGTERM: exit %d, log %q; want 0 after a shutdown line", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("origin did not stop after SIGTERM")
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}
