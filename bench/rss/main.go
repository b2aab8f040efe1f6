//go:build unix

// Command rss runs a command and reports its wall time and peak resident set
// size, for the csv benchmark (GNU time is not always installed).
//
// Usage:
//
//	go run ./bench/rss [-q] [-label NAME] -- CMD [ARGS...]
//
// The child's stdin, stdout and stderr are forwarded (stdout is discarded
// with -q). When the child has exited, rss prints one line to stderr:
//
//	rss: label=NAME exit=0 wall_s=1.234567 user_s=2.1 sys_s=0.2 maxrss_kib=12345 inblock=0
//
// wall_s is the elapsed time from start to exit; user_s and sys_s are the
// CPU time of the child and the descendants it waited for. maxrss_kib is
// wait4's ru_maxrss, in KiB on Linux: the largest resident set of the child
// or of any descendant it waited for (the largest single process, not a sum:
// for a shell pipeline, its biggest member). inblock is ru_inblock, the
// 512-byte blocks read from storage: non-zero means the files were not all in
// the page cache. rss exits with the child's exit status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// rssAnon returns the RssAnon line of a /proc/PID/status file, in KiB (0
// when it cannot be read: not Linux, or the process has ended).
func rssAnon(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func main() {
	quiet := flag.Bool("q", false, "discard the command's standard output")
	label := flag.String("label", "", "label to print in the result line")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: rss [-q] [-label NAME] -- CMD [ARGS...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = os.Stdin
	cmd.Stdout = os.Stdout
	if *quiet {
		cmd.Stdout = io.Discard
	}
	cmd.Stderr = os.Stderr
	// The child gets the terminal's signals itself; rss only waits for it.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)

	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(127)
	}
	// The peak of the command's anonymous memory (its heap, stacks and
	// buffers: RssAnon), sampled every 5 ms from /proc: ru_maxrss counts
	// the pages of its binary too, shared with the page cache.
	var anon atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		path := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if kib := rssAnon(path); kib > anon.Load() {
				anon.Store(kib)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	close(stop)
	<-sampled

	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if code < 0 { // killed by a signal
			code = 128
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code += int(ws.Signal())
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(127)
	}
	var maxrss, inblock int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxrss = int64(ru.Maxrss)   // KiB on Linux
		inblock = int64(ru.Inblock) // 512-byte blocks read from storage
	}
	name := *label
	if name == "" {
		name = args[0]
	}
	fmt.Fprintf(os.Stderr, "rss: label=%s exit=%d wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kib=%d anon_kib=%d inblock=%d\n",
		name, code, wall.Seconds(), cmd.ProcessState.UserTime().Seconds(), cmd.ProcessState.SystemTime().Seconds(), maxrss, anon.Load(), inblock)
	os.Exit(code)
}
