package cli_test

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"csv": func() { os.Exit(cli.Main()) },
	})
}

// TestScripts runs the end-to-end scenarios in testdata/script: one file
// per scenario, each pinning exit codes and output.
func TestScripts(t *testing.T) {
	root := testenv.RepoRoot(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("REPO", root)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status": cmdStatus,
			"mkpe":   cmdMkPE,
			"mkelf":  cmdMkELF,
			"mkfifo": cmdMkfifo,
		},
		RequireExplicitExec: true,
	})
}

// status N cmd args...: run cmd and require exit status N exactly; its
// stdout and stderr are then checked with the usual stdout/stderr commands.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("status: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// mkpe [-pe32] [-overlay N] [-truncate N] [-code HEX-BYTE] FILE: write a
// small valid PE image (see internal/testbin).
func cmdMkPE(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("mkpe", flag.ContinueOnError)
	pe32 := fs.Bool("pe32", false, "PE32 instead of PE32+")
	overlay := fs.Int("overlay", 0, "bytes of overlay")
	truncate := fs.Int("truncate", 0, "keep only this many bytes")
	code := fs.Int("code", -1, "return this value (mov eax, N; ret)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || neg {
		ts.Fatalf("usage: mkpe [-pe32] [-overlay N] [-truncate N] [-code N] FILE")
	}
	o := testbin.PEOptions{PE32: *pe32, Overlay: make([]byte, *overlay)}
	if *code >= 0 {
		o.Code = []byte{0xb8, byte(*code), byte(*code >> 8), 0, 0, 0xc3}
	}
	writeFixture(ts, fs.Arg(0), testbin.PE(o), *truncate)
}

// mkelf [-32] [-extra N] [-truncate N] FILE: write a small valid ELF.
func cmdMkELF(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("mkelf", flag.ContinueOnError)
	c32 := fs.Bool("32", false, "ELFCLASS32")
	extra := fs.Int("extra", 0, "bytes appended")
	truncate := fs.Int("truncate", 0, "keep only this many bytes")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || neg {
		ts.Fatalf("usage: mkelf [-32] [-extra N] [-truncate N] FILE")
	}
	extraBytes := make([]byte, *extra)
	for i := range extraBytes {
		extraBytes[i] = byte(i)
	}
	writeFixture(ts, fs.Arg(0), testbin.ELF(testbin.ELFOptions{Class32: *c32, Extra: extraBytes}), *truncate)
}

func writeFixture(ts *testscript.TestScript, name string, data []byte, truncate int) {
	if truncate > 0 && truncate < len(data) {
		data = data[:truncate]
	}
	p := ts.MkAbs(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
}

// mkfifo FILE: make a named pipe.
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: mkfifo FILE")
	}
	if err := syscall.Mkfifo(ts.MkAbs(args[0]), 0o644); err != nil {
		ts.Fatalf("mkfifo: %v", err)
	}
}
