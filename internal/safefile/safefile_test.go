package safefile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/safefile"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := safefile.ReadFile(small, 5); err != nil || string(b) != "hello" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if _, err := safefile.ReadFile(small, 4); !errors.Is(err, safefile.ErrTooLarge) {
		t.Errorf("over the cap: %v, want ErrTooLarge", err)
	}
	if _, err := safefile.ReadFile(dir, 1<<20); !errors.Is(err, safefile.ErrNotRegular) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v, want ErrNotRegular naming a directory", err)
	}
	_, err := safefile.ReadFile(filepath.Join(dir, "absent"), 1)
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), dir) {
		t.Errorf("absent: %v, want ErrNotExist without the path", err)
	}
}

func TestNoFollow(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("O_NOFOLLOW is a Unix flag")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f, _, err := safefile.Open(link, safefile.Options{})
	if err != nil {
		t.Fatalf("following: %v", err)
	}
	f.Close()
	if f, _, err := safefile.Open(link, safefile.Options{NoFollow: true}); err == nil {
		f.Close()
		t.Error("NoFollow opened a symbolic link")
	}
}
