package format

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
)

func TestFileChangingSizeIsUnreadable(t *testing.T) {
	img := testbin.PE(testbin.PEOptions{})
	p := filepath.Join(t.TempDir(), "a.exe")
	os.WriteFile(p, img, 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	buf := make([]byte, 512)
	n, _ := f.Read(buf)
	// The file was this size at stat time; pretend it is larger now.
	err := Stream(context.Background(), f, buf, n, int64(len(img))+100, nil)
	if !IsChanged(err) {
		t.Errorf("err = %v", err)
	}
}
