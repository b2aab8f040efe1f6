package csv

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
)

// layoutDir writes an OCI image layout directory at dir of one image whose
// layers (bottom first) hold the files given (an empty name's file, a
// whiteout, by its .wh. name).
func layoutDir(t *testing.T, dir string, layers ...map[string][]byte) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) map[string]any {
		h := sha(b)
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"digest": "sha256:" + h, "size": len(b)}
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var descs []any
	var diffs []string
	for _, files := range layers {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			tw.Write(files[n])
		}
		tw.Close()
		d := put(buf.Bytes())
		d["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
		descs = append(descs, d)
		diffs = append(diffs, d["digest"].(string))
	}
	cfg := put(js(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffs}}))
	cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
	man := put(js(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": descs}))
	man["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
	if err := os.WriteFile(filepath.Join(dir, "index.json"), js(map[string]any{"schemaVersion": 2, "manifests": []any{man}}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLayoutDirectory: an OCI image layout directory in the tree is judged
// as the image it holds: the files its layers ship, whiteouts applied, at
// "dir!/path"; its blobs are not judged as files; a layout named as the
// PATH reads "PATH!/path"; a changed byte in a blob blocks the image.
func TestLayoutDirectory(t *testing.T) {
	good := testbin.PE(testbin.PEOptions{})
	bad := testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})
	elf := testbin.ELF(testbin.ELFOptions{})
	dir := tree(t, map[string][]byte{"dist/a.exe": good})
	img := filepath.Join(dir, "dist", "img")
	layoutDir(t, img,
		map[string][]byte{"usr/bin/old.exe": bad, "usr/lib/x.so": elf},
		map[string][]byte{"usr/bin/.wh.old.exe": nil, "usr/bin/new.exe": bad, "usr/bin/app.exe": good})
	set := policyFor(t,
		"{id: good, action: allow, sha256: "+sha(good)+"}",
		"{id: elf, action: allow, sha256: "+sha(elf)+"}")

	rep := validate(t, set, Options{Jobs: 2}, dir)
	var got []string
	for _, r := range rep.Results {
		got = append(got, fmt.Sprintf("%s %s", r.Path, r.Decision.Verdict))
	}
	want := []string{
		"dist/a.exe allowed",
		"dist/img!/usr/bin/app.exe allowed",
		"dist/img!/usr/bin/new.exe blocked",
		"dist/img!/usr/lib/x.so allowed",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, skipped := paths(rep)
	if !slices.Equal(skipped, []string{"dist/img"}) {
		t.Errorf("skipped %q, want only the layout, as a container", skipped)
	}

	// The layout as the PATH.
	rep = validate(t, set, Options{}, img)
	var shown []string
	for _, r := range rep.Results {
		shown = append(shown, r.DisplayPath())
	}
	if !slices.Contains(shown, img+"!/usr/bin/new.exe") || len(shown) != 3 {
		t.Errorf("results of the layout as PATH: %q", shown)
	}

	// csv inspect lists the layout's members.
	var members []string
	in, err := InspectMembers(context.Background(), img, nil, InspectOptions{}, nil, func(rel string, in *Inspection, problem error) error {
		members = append(members, rel)
		return problem
	})
	if err != nil || in.Container != "oci" || !slices.Equal(members, []string{img + "!/usr/bin/app.exe", img + "!/usr/bin/new.exe", img + "!/usr/lib/x.so"}) {
		t.Errorf("InspectMembers: %v, container %q, members %q", err, in.Container, members)
	}

	// --include matches the members, not the layout's own name.
	rep = validate(t, set, Options{Include: []string{"**/*.so"}}, dir)
	if judged, _ := paths(rep); !slices.Equal(judged, []string{"dist/img!/usr/lib/x.so"}) {
		t.Errorf("--include '**/*.so' judged %q", judged)
	}

	// A symbolic link to the layout is a link to one container: skipped
	// where the layout is judged alike, judged as the image when followed.
	if err := os.Symlink("img", filepath.Join(dir, "dist", "link")); err != nil {
		t.Fatal(err)
	}
	rep = validate(t, set, Options{}, dir)
	if judged, skipped := paths(rep); len(judged) != 4 || !slices.Contains(skipped, "dist/link") {
		t.Errorf("link to the layout: judged %q, skipped %q", judged, skipped)
	}
	rep = validate(t, set, Options{FollowSymlinks: true}, dir)
	if judged, _ := paths(rep); !slices.Contains(judged, "dist/link!/usr/bin/new.exe") || slices.ContainsFunc(judged, func(p string) bool { return strings.Contains(p, "blobs") }) {
		t.Errorf("link to the layout, followed: judged %q", judged)
	}
	os.Remove(filepath.Join(dir, "dist", "link"))

	// A changed byte in the top layer: the image cannot be judged past it.
	top := ""
	ents, _ := os.ReadDir(filepath.Join(img, "blobs", "sha256"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(img, "blobs", "sha256", e.Name()))
		if bytes.Contains(b, []byte("usr/bin/new.exe")) {
			top = filepath.Join(img, "blobs", "sha256", e.Name())
			i := bytes.Index(b, bad[len(bad)/2:])
			b[i] ^= 1
			os.WriteFile(top, b, 0o644)
		}
	}
	if top == "" {
		t.Fatal("no top layer")
	}
	rep = validate(t, set, Options{}, dir)
	found := false
	for _, r := range rep.Results {
		if r.Path == "dist/img" {
			found = true
			if r.Decision.Verdict != "blocked" || !errors.Is(r.Err, signing.ErrMalformed) || !strings.Contains(r.Err.Error(), filepath.Base(top)) {
				t.Errorf("tampered layer: %s %v", r.Decision.Verdict, r.Err)
			}
		}
	}
	if !found || rep.Summary.Blocked < 1 {
		t.Errorf("a tampered layer does not block the image: %+v", rep.Summary)
	}
}
