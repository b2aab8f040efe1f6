//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// labDoc is the operator's first-attestation guide whose commands
// TestLabDoc runs.
const labDoc = "docs/attest-lab.md"

// labBlocks returns the fenced blocks of a Markdown document that follow a
// line "<!-- marker -->", in order.
func labBlocks(t *testing.T, doc []byte, marker string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(doc))
	armed, in := false, false
	var cur strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case in && strings.HasPrefix(line, "```"):
			out = append(out, cur.String())
			cur.Reset()
			in = false
		case in:
			cur.WriteString(line + "\n")
		case armed && strings.HasPrefix(line, "```"):
			in, armed = true, false
		case strings.TrimSpace(line) == "<!-- "+marker+" -->":
			armed = true
		case armed && strings.TrimSpace(line) != "":
			t.Fatalf("%s: %q is followed by %q, not a fenced block", labDoc, "<!-- "+marker+" -->", line)
		}
	}
	if in || armed {
		t.Fatalf("%s: an unterminated %s block", labDoc, marker)
	}
	return out
}

// outputLine makes an expected output line a pattern: "…" stands for any
// text (digests, times), the rest is literal and the line is whole.
func outputLine(s string) *regexp.Regexp {
	parts := strings.Split(s, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".+") + "$")
}

// TestLabDoc runs the commands of docs/attest-lab.md verbatim, in order,
// in one bash shell whose HOME is a temporary directory and whose PATH
// starts with csv built from this tree: from nothing to a trusted
// attestation with swtpm, and a changed event log refused. It checks the
// output the guide shows (every line, in order, "…" standing for what
// differs between runs), that the refusal is the replay check's, that the
// lab policy file is examples/attest/lab.yaml, and that the teardown
// leaves no process behind. Without swtpm, swtpm_setup, openssl or the
// systemd-boot EFI binary it skips (fails under CSV_REQUIRE_PEERS=1).
func TestLabDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("builds csv and runs swtpm_setup")
	}
	for _, tool := range []string{"bash", "swtpm", "swtpm_setup", "swtpm_localca", "openssl", "awk", "dd"} {
		testenv.Tool(t, tool)
	}
	const app = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	if _, err := os.Stat(app); err != nil {
		why := app + " is absent: install systemd-boot-efi (.ci/run installs it)"
		if os.Getenv("CSV_REQUIRE_PEERS") == "1" {
			t.Fatalf("required by CSV_REQUIRE_PEERS=1: %s", why)
		}
		t.Skip(why)
	}
	root := testenv.RepoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, labDoc))
	if err != nil {
		t.Fatal(err)
	}
	blocks := labBlocks(t, doc, "lab")
	outputs := labBlocks(t, doc, "lab-output")
	if len(blocks) < 8 || len(outputs) != 2 {
		t.Fatalf("%s: %d command blocks and %d output blocks", labDoc, len(blocks), len(outputs))
	}

	// The policy the guide writes is the example file, and it loads.
	m := regexp.MustCompile(`(?s)cat > attest.yaml <<'EOF'\n(.*?\n)EOF\n`).FindStringSubmatch(strings.Join(blocks, ""))
	if m == nil {
		t.Fatalf("%s writes no attest.yaml", labDoc)
	}
	example, err := os.ReadFile(filepath.Join(root, "examples", "attest", "lab.yaml"))
	if err != nil || string(example) != m[1] {
		t.Fatalf("examples/attest/lab.yaml is not the policy %s writes (%v):\n%s", labDoc, err, m[1])
	}
	cert := testca.PEM(testca.New(t).Root.Cert)
	if _, err := attest.ParsePolicy(example, "lab.yaml", attest.PolicyOptions{ReadFile: func(string) ([]byte, error) { return cert, nil }}); err != nil {
		t.Fatalf("examples/attest/lab.yaml: %v", err)
	}

	// csv from this tree, first on PATH.
	bin := t.TempDir()
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-ldflags=-s -w", "-o", filepath.Join(bin, "csv"), "./cmd/csv")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A short home: swtpm's Unix socket path must fit in 108 bytes.
	home, err := os.MkdirTemp("", "lab")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	script := "set -e\n" + strings.Join(blocks, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "LAB_PORT="+port, "LC_ALL=C")
	// Its own process group, killed whatever happens: swtpm and the
	// service run in the background of the script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A script that stops early leaves swtpm or the service running in
	// the background with its standard output: Wait then returns after
	// this delay, with what the script printed, instead of waiting for
	// them (the test hung until go test's 10-minute timeout, saying
	// nothing of why the script stopped).
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	err = cmd.Wait()
	t.Logf("the guide's commands took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("the guide's commands failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	// Every line the guide shows, in order.
	lines := strings.Split(stdout.String(), "\n")
	at := 0
	for _, block := range outputs {
		for _, want := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
			re := outputLine(want)
			for at < len(lines) && !re.MatchString(lines[at]) {
				at++
			}
			if at == len(lines) {
				t.Fatalf("the guide shows %q, which the commands did not print (in this order):\n%s", want, stdout.String())
			}
			at++
		}
	}
	if n := strings.Count(stdout.String(), "attestation: TRUSTED\n"); n != 1 {
		t.Errorf("%d trusted attestations", n)
	}
	errs := stderr.String()
	if !regexp.MustCompile(`(?m)^csv: trusted: credential \(token, expires [^)]+\) written to host\.token$`).MatchString(errs) {
		t.Errorf("no credential line on stderr:\n%s", errs)
	}
	// The changed log: refused by the replay check, exit 1, no credential.
	if !strings.Contains(errs, "csv: client: attestation refused: replay:") || !strings.Contains(stdout.String(), "refused: exit 1\n") {
		t.Errorf("the changed log was not refused by the replay check:\n%s\n%s", stdout.String(), errs)
	}
	// The teardown removed the lab and stopped swtpm and the service:
	// nothing is left in the process group.
	if _, err := os.Stat(filepath.Join(home, "csv-lab")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("~/csv-lab is still there: %v", err)
	}
	// A process the teardown killed may take a moment to go, and one that
	// has gone stays a zombie until something reaps it (in a container,
	// perhaps nothing): only live members of the group count.
	var live []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		live = liveInGroup(pgid)
		if len(live) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(live) > 0 {
		t.Errorf("processes of the guide are still running after its teardown: %s", strings.Join(live, "; "))
	}
}

// liveInGroup lists the processes of process group pgid that are not
// zombies, from /proc (pid, state and command).
func liveInGroup(pgid int) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and
		// parentheses, so the fields are read after its last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		out = append(out, e.Name()+" "+f[0]+" "+s[strings.IndexByte(s, '(')+1:i])
	}
	return out
}
