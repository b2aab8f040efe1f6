// Command mkwin writes the Windows-coverage benchmark's tree (bench/windows.sh):
// PowerShell scripts and small PE files, deterministic and distinct.
//
// Usage:
//
//	go run ./bench/mkwin -scripts 10000 -pe 500 DIR
//
// It writes DIR/scripts/NN/sNNNNN.ps1 (100 scripts per directory, 2 to 24
// KiB of PowerShell each, UTF-8, CRLF line endings as Windows editors save
// them) and DIR/drivers/dNNNN.sys (PE images of 16 to 512 KiB, each with a
// distinct overlay), and nothing else. The scripts and PE files are unsigned:
// bench/windows.sh signs the scripts and catalogs the PE files.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/codesignval/csv/internal/testbin"
)

func main() {
	scripts := flag.Int("scripts", 10000, "PowerShell scripts to write")
	pes := flag.Int("pe", 500, "PE files to write")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkwin [-scripts N] [-pe N] DIR")
		os.Exit(2)
	}
	if err := write(flag.Arg(0), *scripts, *pes); err != nil {
		fmt.Fprintln(os.Stderr, "mkwin:", err)
		os.Exit(1)
	}
}

func write(dir string, scripts, pes int) error {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range scripts {
		d := filepath.Join(dir, "scripts", fmt.Sprintf("%02d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("s%05d.ps1", i)), script(r, i), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "drivers"), 0o755); err != nil {
		return err
	}
	for i := range pes {
		overlay := make([]byte, 16<<10+r.IntN(496<<10))
		for j := range overlay {
			overlay[j] = byte(r.Uint32())
		}
		img := testbin.PE(testbin.PEOptions{Overlay: overlay})
		if err := os.WriteFile(filepath.Join(dir, "drivers", fmt.Sprintf("d%04d.sys", i)), img, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// script returns a PowerShell script of 2 to 24 KiB.
func script(r *rand.Rand, i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Deployment step %d\r\nparam([string]$Target = 'C:\\\\Program Files\\\\Example')\r\n", i)
	size := 2<<10 + r.IntN(22<<10)
	for n := 0; b.Len() < size; n++ {
		fmt.Fprintf(&b, "function Step%d-%d {\r\n    $path = Join-Path $Target 'item%d'\r\n    if (-not (Test-Path $path)) { New-Item -ItemType Directory -Path $path | Out-Null }\r\n    Write-Verbose \"step %d done: $path\"\r\n}\r\n", i, n, r.IntN(1000), n)
	}
	b.WriteString("Write-Output 'done'\r\n")
	return []byte(b.String())
}
