// Package browsertest runs the web client in real headless Chromium against
// a real edge, on loopback, inside a network namespace the tests create.
//
// Chromium never uses 127.0.0.1 for WebRTC (host candidates come from the
// interface of the default route), so Main re-executes the test binary in a
// new network namespace (`unshare -n`; root is needed) where it brings up
// lo, creates a veth pair 10.77.0.1/24 <-> 10.77.0.2/24 with the far end in
// a second namespace, and routes by default via 10.77.0.2. Browsers then
// gather 10.77.0.1 as their host candidate and connect to each other (and to
// Go peers) over it; nothing leaves the namespaces. Pages are loaded from
// http://127.0.0.1:PORT, a secure context, so crypto.subtle works.
//
// Use it from a test package:
//
//	func TestMain(m *testing.M) { os.Exit(browsertest.Main(m)) }
//
// Browser tests skip with a clear message where Chromium or the namespace
// is missing, except under CI=true, where that is a failure.
package browsertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Addresses of the namespace's veth pair.
const (
	HostAddr = "10.77.0.1" // this namespace's end: browsers' host candidate
	PeerAddr = "10.77.0.2" // the far end, the default gateway
)

const envInside = "PA_BROWSERTEST_NETNS"    // "1" in the re-executed child
const envNoNet = "PA_BROWSERTEST_NONET"     // why the namespace could not be made
const vethName, vethPeerName = "pa0", "pa1" // only ever inside our namespaces

// Main runs the tests of m inside a fresh network namespace and returns the
// exit code. Call it from TestMain.
func Main(m *testing.M) int {
	if os.Getenv(envInside) == "1" {
		cleanup, err := setupNetwork()
		if err != nil {
			fmt.Fprintf(os.Stderr, "browsertest: network namespace setup failed: %v\n", err)
			os.Setenv(envNoNet, err.Error())
		}
		code := m.Run()
		if cleanup != nil {
			cleanup()
		}
		return code
	}
	if reason := netnsUnavailable(); reason != "" {
		os.Setenv(envNoNet, reason)
		return m.Run()
	}
	exe, err := os.Executable()
	if err != nil {
		os.Setenv(envNoNet, err.Error())
		return m.Run()
	}
	cmd := exec.Command("unshare", append([]string{"-n", "--", exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "browsertest: re-executing in a network namespace: %v\n", err)
		return 1
	}
	return 0
}

func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not root: cannot create a network namespace (run the browser tests as root)"
	}
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found (util-linux and iproute2 are needed)"
		}
	}
	return ""
}

// setupNetwork runs inside the new namespace. The far end of the veth pair
// lives in a namespace held open by a sleeping child; killing it removes
// that namespace and the pair.
func setupNetwork() (cleanup func(), err error) {
	if err := run("ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	holder := exec.Command("unshare", "-n", "sleep", "86400")
	if err := holder.Start(); err != nil {
		return nil, fmt.Errorf("starting the peer namespace: %w", err)
	}
	cleanup = func() {
		holder.Process.Kill()
		holder.Wait()
	}
	pid := fmt.Sprint(holder.Process.Pid)
	if err := waitOtherNetns(pid); err != nil {
		cleanup()
		return nil, err
	}
	steps := [][]string{
		{"ip", "link", "add", vethName, "type", "veth", "peer", "name", vethPeerName},
		{"ip", "link", "set", vethPeerName, "netns", pid},
		{"ip", "addr", "add", HostAddr + "/24", "dev", vethName},
		{"ip", "link", "set", vethName, "up"},
		{"nsenter", "-t", pid, "-n", "ip", "addr", "add", PeerAddr + "/24", "dev", vethPeerName},
		{"nsenter", "-t", pid, "-n", "ip", "link", "set", vethPeerName, "up"},
		{"nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up"},
		{"ip", "route", "add", "default", "via", PeerAddr},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			cleanup()
			return nil, err
		}
	}
	return cleanup, nil
}

func waitOtherNetns(pid string) error {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if other, err := os.Readlink(filepath.Join("/proc", pid, "ns", "net")); err == nil && other != self {
			return nil
		}
	}
	return errors.New("peer namespace did not appear within 5s")
}

func run(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// RequireNetns skips (or, under CI=true, fails) a test that needs WebRTC
// between browsers when the namespace could not be made.
func RequireNetns(t testing.TB) {
	t.Helper()
	if reason := os.Getenv(envNoNet); reason != "" {
		skipOrFail(t, "no network namespace for WebRTC: "+reason)
	} else if os.Getenv(envInside) != "1" {
		skipOrFail(t, "not running under browsertest.Main")
	}
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing browser environment is a failure)")
	}
	t.Skip(msg)
}
