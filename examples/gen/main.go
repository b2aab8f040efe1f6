// Command gen writes the example build trees and policy that the README's
// quick start validates. Run it from the repository root:
//
//	go run ./examples/gen
//
// examples/build/ holds a small "build output": a PE32+ program, a PE32
// plugin with a .node extension (csv recognises binaries by content), a
// static x86-64 Linux program that exits 0, a PowerShell script (told by
// its extension) and a text file that is skipped. examples/untrusted/
// holds what a policy must block: a PE the policy does not know, an ELF
// cut short and a script whose signature block is cut short. examples/policy.yaml is what
// "csv policy new --level hash" writes for examples/build.
//
// The binaries are made from scratch by internal/testbin, so their bytes are
// reproducible: a test checks that the committed files are what this program
// writes.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
)

// Files returns the example files, by path relative to examples/.
func Files() map[string][]byte {
	return map[string][]byte{
		"build/app.exe":             testbin.PE(testbin.PEOptions{}),
		"build/plugins/render.node": testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("example plugin data\x00")}),
		"build/bin/tool":            testbin.ELF(testbin.ELFOptions{}),
		"build/README.txt":          []byte("Example build output for the csv quick start. Not a binary: csv skips it.\n"),
		"untrusted/unknown.exe":     testbin.PE(testbin.PEOptions{Code: []byte{0xb8, 0x2a, 0, 0, 0, 0xc3}}), // mov eax, 42; ret
		"untrusted/truncated-tool":  testbin.ELF(testbin.ELFOptions{})[:200],
		// PowerShell scripts, told by their extension: one the policy
		// allows by its SIP hash, and one whose signature block is cut
		// short (malformed, whatever the policy says).
		"build/install.ps1":   []byte("# Installs the example app.\r\nCopy-Item -Path app.exe -Destination $env:ProgramFiles\\Example\r\n"),
		"untrusted/setup.ps1": []byte("Start-Process app.exe\r\n\r\n# SIG # Begin signature block\r\n# MIIF0wYJKoZIhvcNAQcCoIIFxDCCBcACAQExDzANBglghkgBZQMEAgEFADB5Bgor\r\n"),
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	for rel, data := range Files() {
		p := filepath.Join("examples", filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if filepath.Base(filepath.Dir(p)) == "bin" {
			mode = 0o755
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			return err
		}
	}
	code := cli.Run(context.Background(), cmdutil.System(), []string{"policy", "new", "--level", "hash",
		"--name", "example", "--version", "1.0.0", "--output", "examples/policy.yaml", "examples/build"})
	if code != 0 {
		return fmt.Errorf("csv policy new exited %d", code)
	}
	return nil
}
