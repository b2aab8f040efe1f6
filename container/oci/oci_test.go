package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

func defaultLimits() *container.Limits { return container.DefaultLimits() }

type got struct {
	m    container.Member
	data []byte
}

func walkBytes(t testing.TB, b []byte, lim *container.Limits) ([]got, error) {
	t.Helper()
	if lim == nil {
		lim = defaultLimits()
	}
	var out []got
	err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "img.tar", lim,
		func(m *container.Member, r io.Reader) error {
			if (r == nil) != (m.Problem != nil) {
				t.Errorf("member %s: reader %v with Problem %v", m.Name, r != nil, m.Problem)
			}
			g := got{m: *m}
			if r != nil {
				d, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				g.data = d
			}
			out = append(out, g)
			return nil
		})
	return out, err
}

func walkFile(t testing.TB, p string) ([]got, error) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !(Reader{}).Sniff(b[:min(len(b), container.SniffSize)], filepath.Base(p)) {
		t.Errorf("Sniff does not recognise %s", p)
	}
	return walkBytes(t, b, nil)
}

// fsEntry is a file of a generated layer: data for a regular file, link
// for a symbolic link, "" data and no link for an empty file (whiteouts).
type fsEntry struct {
	data []byte
	link string
	hard string // a hard link to this name in the same layer
}

func gen(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// testLayers is an image's layers, bottom first, exercising whiteouts:
// a file deleted, a directory deleted, a directory made opaque, a file
// replaced, a directory replaced by a file, a symbolic and a hard link.
func testLayers(seed uint64) []map[string]fsEntry {
	rng := rand.New(rand.NewPCG(seed, 2))
	return []map[string]fsEntry{
		{
			"usr/bin/keep":      {data: gen(rng, 100<<10)},
			"usr/bin/deleted":   {data: gen(rng, 300)},
			"usr/bin/replaced":  {data: gen(rng, 400)},
			"opt/gone/a":        {data: gen(rng, 10)},
			"opt/gone/b/c":      {data: gen(rng, 11)},
			"etc/opaque/old":    {data: gen(rng, 12)},
			"etc/opaque/kept":   {data: gen(rng, 13)},
			"var/lib/dir/x":     {data: gen(rng, 14)},
			"lib/libz.so.1":     {data: gen(rng, 5000)},
			"lib/libz.so":       {link: "libz.so.1"},
			"usr/share/empty":   {},
			"usr/share/doc/big": {data: gen(rng, 70000)},
		},
		{
			"usr/bin/.wh.deleted":     {},
			"usr/bin/replaced":        {data: gen(rng, 401)},
			"opt/.wh.gone":            {},
			"etc/opaque/.wh..wh..opq": {},
			"etc/opaque/kept":         {data: gen(rng, 15)},
			"etc/opaque/new":          {data: gen(rng, 16)},
			"var/lib/dir":             {data: gen(rng, 17)},
			"usr/bin/tool":            {data: gen(rng, 2000), hard: "usr/bin/tool2"},
		},
		{
			"usr/bin/added": {data: gen(rng, 3000)},
		},
	}
}

// writeLayer writes the layer's files into a directory and archives it
// with GNU tar, compressed with comp ("", "gzip", "zstd") by the real tool.
func writeLayer(t testing.TB, files map[string]fsEntry, comp string) []byte {
	t.Helper()
	tarTool := testenv.Tool(t, "tar")
	dir := t.TempDir()
	for name, e := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if e.link != "" {
			if err := os.Symlink(e.link, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, e.data, 0o755); err != nil {
			t.Fatal(err)
		}
		if e.hard != "" {
			if err := os.Link(p, filepath.Join(dir, e.hard)); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := filepath.Join(t.TempDir(), "layer.tar")
	cmd := exec.Command(tarTool, "-C", dir, "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "-cf", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	switch comp {
	case "gzip":
		run(t, "gzip", "-n", out)
		out += ".gz"
	case "zstd":
		run(t, "zstd", "-q", "--rm", out)
		out += ".zst"
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t testing.TB, tool string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, tool), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return out
}

func sha(b []byte) string { d := sha256.Sum256(b); return hex.EncodeToString(d[:]) }

// layerDiffID is the digest of the layer's uncompressed tar.
func layerDiffID(t testing.TB, b []byte, comp string) string {
	t.Helper()
	if comp == "" {
		return "sha256:" + sha(b)
	}
	tool := map[string]string{"gzip": "gzip", "zstd": "zstd"}[comp]
	cmd := exec.Command(testenv.Tool(t, tool), "-dc")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return "sha256:" + sha(out)
}

var mediaTypes = map[string]string{
	"":     "application/vnd.oci.image.layer.v1.tar",
	"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
	"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}

// ociLayout writes an OCI image layout directory of one or more images
// (each a list of layers) and returns its path.
func ociLayout(t testing.TB, images map[string][]map[string]fsEntry, comp string) string {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) (string, int64) {
		h := sha(b)
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h, int64(len(b))
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var manifests []any
	tags := make([]string, 0, len(images))
	for tag := range images {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		var layers []any
		var diffIDs []string
		for _, l := range images[tag] {
			b := writeLayer(t, l, comp)
			d, n := put(b)
			layers = append(layers, map[string]any{"mediaType": mediaTypes[comp], "digest": d, "size": n})
			diffIDs = append(diffIDs, layerDiffID(t, b, comp))
		}
		cd, cn := put(mustJSON(map[string]any{"architecture": "amd64", "os": "linux",
			"config": map[string]any{}, "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}}))
		md, mn := put(mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
			"layers": layers}))
		manifests = append(manifests, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json",
			"digest": md, "size": mn, "annotations": map[string]string{"org.opencontainers.image.ref.name": tag}})
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), mustJSON(map[string]any{"schemaVersion": 2, "manifests": manifests}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tarDir archives a directory with GNU tar.
func tarDir(t testing.TB, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "img.tar")
	run(t, "tar", "-C", dir, "--sort=name", "-cf", out, ".")
	return out
}

// rootfs is the oracle: umoci unpacks the image (applying its whiteouts)
// and the regular files and symbolic links of its root filesystem are
// read back.
func rootfs(t testing.TB, layout, tag string) (map[string][]byte, map[string]string) {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, "umoci", "unpack", "--rootless", "--image", layout+":"+tag, bundle)
	root := filepath.Join(bundle, "rootfs")
	files, links := map[string][]byte{}, map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			links[rel], err = os.Readlink(p)
			return err
		}
		files[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, links
}

// split sorts Walk's members into regular files with bytes, symbolic
// links, and hard links (by name), failing on anything else.
func split(t testing.TB, members []got, prefix string) (map[string][]byte, map[string]string, map[string]string) {
	t.Helper()
	files, links, hard := map[string][]byte{}, map[string]string{}, map[string]string{}
	for _, g := range members {
		name, ok := strings.CutPrefix(g.m.Name, prefix)
		if !ok {
			continue
		}
		switch {
		case g.m.Problem == nil && g.m.Type == container.Regular:
			if _, dup := files[name]; dup {
				t.Errorf("%s yielded twice", g.m.Name)
			}
			if int64(len(g.data)) != g.m.Size {
				t.Errorf("%s: %d bytes, Size %d", g.m.Name, len(g.data), g.m.Size)
			}
			files[name] = g.data
		case g.m.Type == container.Symlink && errors.Is(g.m.Problem, container.ErrMember):
			links[name] = g.m.Link
		case g.m.Type == container.Hardlink && errors.Is(g.m.Problem, container.ErrMember):
			target, err := container.CleanName(strings.TrimPrefix(g.m.Link, prefix))
			if err != nil {
				t.Errorf("hard link %s: %v", name, err)
			}
			hard[name] = target
		default:
			t.Errorf("unexpected member %+v", g.m)
		}
	}
	return files, links, hard
}

func compare(want, have map[string][]byte) string {
	var diff []string
	for n, d := range want {
		h, ok := have[n]
		switch {
		case !ok:
			diff = append(diff, "missing "+n)
		case !bytes.Equal(h, d):
			diff = append(diff, fmt.Sprintf("%s: %d bytes, want %d", n, len(h), len(d)))
		}
	}
	for n := range have {
		if _, ok := want[n]; !ok {
			diff = append(diff, "extra "+n)
		}
	}
	sort.Strings(diff)
	return strings.Join(diff, "\n")
}

// checkAgainst compares Walk's members (under prefix) with umoci's root
// filesystem: the same regular files byte for byte, the same symbolic
// links; a hard link is a member with a Problem whose target umoci
// extracted with the same bytes as the link.
func checkAgainst(t *testing.T, members []got, prefix string, files map[string][]byte, links map[string]string) {
	t.Helper()
	yf, yl, yh := split(t, members, prefix)
	for name, target := range yh {
		if !bytes.Equal(files[name], files[target]) || files[name] == nil {
			t.Errorf("hard link %s -> %s: umoci extracted different bytes", name, target)
		}
		yf[name] = files[name] // judged under its target's name
	}
	if diff := compare(files, yf); diff != "" {
		t.Errorf("Walk and umoci's root filesystem differ:\n%s", diff)
	}
	rooted := map[string]string{}
	for name, target := range links {
		rooted[name] = "/" + strings.TrimSuffix(prefix, "/") + rootedLink("", name, target)
		if prefix == "" {
			rooted[name] = rootedLink("", name, target)
		}
	}
	links = rooted
	if fmt.Sprint(links) != fmt.Sprint(yl) {
		t.Errorf("symlinks: umoci %v, Walk %v", links, yl)
	}
}

// TestAgainstUmociAndSkopeo builds an OCI layout (layers by GNU tar,
// compressed by gzip and zstd), then: Walk of the layout's tar matches
// umoci's unpacked root filesystem; skopeo converts the layout into a
// docker save tarball (docker-archive) and an OCI archive of its own, and
// Walk of each matches the same root filesystem.
func TestAgainstUmociAndSkopeo(t *testing.T) {
	skopeo := testenv.Tool(t, "skopeo")
	for _, comp := range []string{"", "gzip", "zstd"} {
		t.Run(nameComp(comp), func(t *testing.T) {
			layout := ociLayout(t, map[string][]map[string]fsEntry{"v1": testLayers(1)}, comp)
			unpack := layout
			if comp == "zstd" {
				// umoci 0.4 reads no zstd layers: its root filesystem
				// of the same layers uncompressed is the oracle.
				unpack = ociLayout(t, map[string][]map[string]fsEntry{"v1": testLayers(1)}, "")
			}
			files, links := rootfs(t, unpack, "v1")
			if _, ok := files["usr/bin/deleted"]; ok {
				t.Fatal("umoci kept a deleted file: the oracle is not applying whiteouts")
			}
			members, err := walkFile(t, tarDir(t, layout))
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			checkAgainst(t, members, "", files, links)

			oa := filepath.Join(t.TempDir(), "oci.tar")
			run(t, skopeo, "copy", "--quiet", "oci:"+layout+":v1", "oci-archive:"+oa+":v1")
			members, err = walkFile(t, oa)
			if err != nil {
				t.Fatalf("Walk of skopeo's oci-archive: %v", err)
			}
			checkAgainst(t, members, "", files, links)

			if comp == "zstd" {
				return // docker images have no zstd layers: skopeo refuses
			}
			da := filepath.Join(t.TempDir(), "docker.tar")
			run(t, skopeo, "copy", "--quiet", "oci:"+layout+":v1", "docker-archive:"+da+":example.com/csv/test:v1")
			members, err = walkFile(t, da)
			if err != nil {
				t.Fatalf("Walk of skopeo's docker-archive: %v", err)
			}
			checkAgainst(t, members, "", files, links)
		})
	}
}

// TestSeveralImages: two images in one layout are each yielded whole,
// under their names.
func TestSeveralImages(t *testing.T) {
	images := map[string][]map[string]fsEntry{"one": testLayers(1), "two": testLayers(2)[:1]}
	layout := ociLayout(t, images, "gzip")
	members, err := walkFile(t, tarDir(t, layout))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"one", "two"} {
		files, links := rootfs(t, layout, tag)
		checkAgainst(t, members, tag+"/", files, links)
	}
}

// TestTamperedBlobs changes one byte of a layer blob, of a manifest, of a
// config: skopeo (which checks digests) refuses to copy the image and Walk
// returns a malformed error naming the blob.
func TestTamperedBlobs(t *testing.T) {
	skopeo := testenv.Tool(t, "skopeo")
	layout := ociLayout(t, map[string][]map[string]fsEntry{"v1": testLayers(3)}, "")
	var idx index
	b, _ := os.ReadFile(filepath.Join(layout, "index.json"))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	md, _ := parseDigest(idx.Manifests[0].Digest)
	var m manifest
	b, _ = os.ReadFile(filepath.Join(layout, blobPath(md)))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	ld, _ := parseDigest(m.Layers[1].Digest)
	cd, _ := parseDigest(m.Config.Digest)
	for what, blob := range map[string]string{"layer": blobPath(ld), "manifest": blobPath(md), "config": blobPath(cd)} {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			run(t, "cp", "-a", layout+"/.", dir)
			p := filepath.Join(dir, blob)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// A byte in a file's data (the layer), or a space in the JSON.
			at := len(b) / 2
			if what != "layer" {
				at = bytes.IndexByte(b, ',')
				b = append(b[:at+1], append([]byte(" "), b[at+1:]...)...)
			} else {
				at = bytes.Index(b, []byte("usr/bin/replaced")) + 512 + 7
				b[at] ^= 1
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// skopeo does not check a manifest's digest in a layout;
			// umoci does.
			out, err := exec.Command(skopeo, "copy", "--quiet", "oci:"+dir+":v1", "dir:"+t.TempDir()).CombinedOutput()
			if err == nil {
				out, err = exec.Command(testenv.Tool(t, "umoci"), "unpack", "--rootless", "--image", dir+":v1",
					filepath.Join(t.TempDir(), "b")).CombinedOutput()
			}
			if err == nil {
				t.Fatalf("neither skopeo nor umoci refuse the tampered image")
			}
			_, werr := walkFile(t, tarDir(t, dir))
			var me *signing.MalformedError
			if !errors.As(werr, &me) || !strings.Contains(me.Reason, blob) {
				t.Errorf("skopeo refuses it (%s); Walk: %v", bytes.TrimSpace(out), werr)
			}
		})
	}
}
