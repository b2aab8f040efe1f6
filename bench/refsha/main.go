// Command refsha is the bare reference of the csv benchmark: the physical
// limit of reading and hashing a build tree on this machine. It walks DIR
// (regular files only, symbolic links not followed), then hashes every
// file's whole content with crypto/sha256 on GOMAXPROCS workers. It does no
// parsing and no judging.
//
// To be fair to both sides it schedules work the way csv validate does:
// files sorted largest first, workers taking the next index from an atomic
// counter, each worker streaming through its own fixed 256 KiB buffer with
// (*os.File).Read (no io.Copy, no mmap).
//
// Usage:
//
//	go run ./bench/refsha DIR
//
// It prints one line: total bytes hashed, file count and digest count.
package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// bufSize matches csv's per-worker read buffer (internal/limits.ReadBuffer).
const bufSize = 256 << 10

type file struct {
	path string
	size int64
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: refsha DIR")
		os.Exit(2)
	}
	files, err := walk(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "refsha:", err)
		os.Exit(1)
	}
	// Largest first, as csv schedules: a big file started last would leave
	// the other workers idle at the end.
	slices.SortStableFunc(files, func(a, b file) int { return cmp.Compare(b.size, a.size) })

	digests := make([]string, len(files))
	var (
		next     atomic.Int64
		total    atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	workers := min(runtime.GOMAXPROCS(0), max(len(files), 1))
	for range workers {
		wg.Go(func() {
			buf := make([]byte, bufSize)
			h := sha256.New()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(files) {
					return
				}
				n, err := hashFile(files[k].path, h, buf)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					continue
				}
				total.Add(n)
				digests[k] = hex.EncodeToString(h.Sum(nil))
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "refsha:", firstErr)
		os.Exit(1)
	}
	nd := 0
	for _, d := range digests {
		if d != "" {
			nd++
		}
	}
	fmt.Printf("refsha: %d bytes, %d files, %d digests\n", total.Load(), len(files), nd)
}

// walk lists the regular files under dir with their sizes. Symbolic links
// and other non-regular entries are skipped, never followed.
func walk(dir string) ([]file, error) {
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, file{path: p, size: info.Size()})
		return nil
	})
	return files, err
}

// hashFile resets h and feeds it the whole file at path through buf. It
// returns the number of bytes hashed.
func hashFile(path string, h hash.Hash, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h.Reset()
	var total int64
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
