package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Images crafted in Go: the shapes the real tools never write.

type tent struct {
	name string
	typ  byte
	data []byte
	link string
}

func mkTar(ents []tent, trailer []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o755, Linkname: e.link, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if typ == tar.TypeReg {
			_, _ = tw.Write(e.data)
		}
	}
	_ = tw.Close()
	return append(buf.Bytes(), trailer...)
}

func gzBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// img describes a crafted image; the zero value of each knob is the honest
// one.
type img struct {
	layers     [][]byte // layer blobs as stored
	plain      [][]byte // the uncompressed tars (diff_ids), nil: layers
	mediaType  string   // of every layer
	ref        string
	dropBlob   bool // leave the first layer's blob out
	badDiffID  bool
	badLayerDg bool
}

type layoutOpts struct {
	manifestJSON func([]byte) []byte // rewrites the manifest before it is stored
	indexJSON    func([]byte) []byte // rewrites index.json (its digest is not checked)
	extra        []tent              // more outer entries
	dockerSave   bool                // write manifest.json (Docker 25) too
	dockerJSON   func([]any) []any   // rewrites manifest.json's entries
}

func mkImage(images []img, o layoutOpts) []byte {
	var outer []tent
	blobs := map[string]bool{}
	put := func(b []byte) string {
		d := "sha256:" + sha(b)
		if !blobs[d] {
			blobs[d] = true
			outer = append(outer, tent{name: "blobs/sha256/" + sha(b), data: b})
		}
		return d
	}
	var manifests []any
	var docker []any
	for _, im := range images {
		mt := im.mediaType
		if mt == "" {
			mt = mediaTypes[""]
		}
		var layers []any
		var diff, paths []string
		for i, l := range im.layers {
			plain := l
			if im.plain != nil {
				plain = im.plain[i]
			}
			d := "sha256:" + sha(l)
			if !(im.dropBlob && i == 0) {
				d = put(l)
			}
			paths = append(paths, "blobs/sha256/"+strings.TrimPrefix(d, "sha256:"))
			if im.badLayerDg {
				d = "sha256:" + sha([]byte("other"))
			}
			layers = append(layers, map[string]any{"mediaType": mt, "digest": d, "size": len(l)})
			dd := "sha256:" + sha(plain)
			if im.badDiffID {
				dd = "sha256:" + sha(nil)
			}
			diff = append(diff, dd)
		}
		cfg, _ := json.Marshal(map[string]any{"rootfs": map[string]any{"type": "layers", "diff_ids": diff}})
		cd := put(cfg)
		mb, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtManifest,
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
			"layers": layers})
		if o.manifestJSON != nil {
			mb = o.manifestJSON(mb)
		}
		md := put(mb)
		ann := map[string]string{}
		if im.ref != "" {
			ann["org.opencontainers.image.ref.name"] = im.ref
		}
		manifests = append(manifests, map[string]any{"mediaType": mtManifest, "digest": md, "size": len(mb), "annotations": ann})
		docker = append(docker, map[string]any{"Config": "blobs/sha256/" + strings.TrimPrefix(cd, "sha256:"),
			"RepoTags": []string{im.ref}, "Layers": paths})
	}
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})
	if o.indexJSON != nil {
		ib = o.indexJSON(ib)
	}
	outer = append(outer, tent{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		tent{name: "index.json", data: ib})
	if o.dockerSave {
		if o.dockerJSON != nil {
			docker = o.dockerJSON(docker)
		}
		db, _ := json.Marshal(docker)
		outer = append(outer, tent{name: "manifest.json", data: db})
	}
	outer = append(outer, o.extra...)
	return mkTar(outer, nil)
}

func TestHostile(t *testing.T) {
	base := mkTar([]tent{{name: "usr/", typ: tar.TypeDir}, {name: "usr/bin/x", data: []byte("MZ x")},
		{name: "usr/bin/gone", data: []byte("g")}, {name: "etc/o/a", data: []byte("a")}, {name: "keep/z", data: []byte("z")}}, nil)
	upper := mkTar([]tent{{name: "usr/bin/.wh.gone"}, {name: "etc/o/.wh..wh..opq"}, {name: "etc/o/b", data: []byte("b")},
		{name: ".wh..wh.plnk"}}, nil)
	zeros := gzBytes(mkTar([]tent{{name: "z", data: make([]byte, 4<<20)}}, nil))
	zerosPlain := mkTar([]tent{{name: "z", data: make([]byte, 4<<20)}}, nil)
	one := func(layers ...[]byte) []img { return []img{{layers: layers, ref: "v1"}} }
	tests := []struct {
		name    string
		tarball []byte
		lim     func(*container.Limits)
		wantErr error
		problem map[string]error  // member -> Problem (errors.Is), nil: clean
		links   map[string]string // member -> its Link
	}{
		{name: "whiteouts", tarball: mkImage(one(base, upper), layoutOpts{}),
			problem: map[string]error{"usr/bin/x": nil, "etc/o/b": nil, "keep/z": nil}},
		{name: "docker 25 save, two images", tarball: mkImage([]img{{layers: [][]byte{base}, ref: "ex/a:1"}, {layers: [][]byte{base, upper}, ref: "ex/b:2"}}, layoutOpts{dockerSave: true}),
			problem: map[string]error{"ex/a:1/usr/bin/x": nil, "ex/a:1/usr/bin/gone": nil, "ex/a:1/etc/o/a": nil, "ex/a:1/keep/z": nil,
				"ex/b:2/usr/bin/x": nil, "ex/b:2/etc/o/b": nil, "ex/b:2/keep/z": nil}},
		{name: "root made opaque", tarball: mkImage(one(base, mkTar([]tent{{name: ".wh..wh..opq"}, {name: "n", data: []byte("n")}}, nil)), layoutOpts{}),
			problem: map[string]error{"n": nil}},
		{name: "file over a directory", tarball: mkImage(one(base, mkTar([]tent{{name: "usr", data: []byte("f")}}, nil)), layoutOpts{}),
			problem: map[string]error{"usr": nil, "etc/o/a": nil, "keep/z": nil}},
		{name: "directory deleted", tarball: mkImage(one(base, mkTar([]tent{{name: ".wh.usr"}}, nil)), layoutOpts{}),
			problem: map[string]error{"etc/o/a": nil, "keep/z": nil}},
		{name: "unsafe members", tarball: mkImage(one(mkTar([]tent{
			{name: "../../etc/passwd", data: []byte("a")}, {name: "/abs", data: []byte("b")},
			{name: "l", typ: tar.TypeSymlink, link: "/bin/sh"}, {name: "h", typ: tar.TypeLink, link: "../../x"},
			{name: "d", typ: tar.TypeChar}, {name: "dup", data: []byte("1")}, {name: "./dup", data: []byte("2")},
		}, nil)), layoutOpts{}), problem: map[string]error{
			"../../etc/passwd": container.ErrMember, "/abs": container.ErrMember, "l": container.ErrMember,
			"h": container.ErrMember, "d": container.ErrMember, "dup": nil, "dup#2": container.ErrMember}},
		// A hard link ships the bytes of the file on disk under its
		// target's name when it is laid down: one of a lower layer (later
		// replaced, or deleted), or a copy its own layer replaces after
		// it. Only a link to a file its layer shipped before it is tied to
		// that file (Link, which the pipeline settles); the others are
		// blocked with no Link.
		{name: "hard link to a lower layer's file, replaced", tarball: mkImage(one(
			mkTar([]tent{{name: "bin/evil", data: []byte("evil")}}, nil),
			mkTar([]tent{{name: "bin/ok", typ: tar.TypeLink, link: "bin/evil"}, {name: "bin/evil", data: []byte("benign")}}, nil)), layoutOpts{}),
			problem: map[string]error{"bin/ok": container.ErrMember, "bin/evil": nil}, links: map[string]string{"bin/ok": ""}},
		{name: "hard link to a file a higher layer replaces", tarball: mkImage(one(
			mkTar([]tent{{name: "bin/evil", data: []byte("evil")}, {name: "bin/ok", typ: tar.TypeLink, link: "bin/evil"}}, nil),
			mkTar([]tent{{name: "bin/evil", data: []byte("benign")}}, nil)), layoutOpts{}),
			problem: map[string]error{"bin/ok": container.ErrMember, "bin/evil": nil}, links: map[string]string{"bin/ok": ""}},
		{name: "hard links in their layer", tarball: mkImage([]img{{layers: [][]byte{base}, ref: "ex/a:1"}, {layers: [][]byte{
			mkTar([]tent{{name: "./bin/x", data: []byte("x")}, {name: "bin/h", typ: tar.TypeLink, link: "./bin/x"}, {name: "bin/hh", typ: tar.TypeLink, link: "bin/h"}}, nil)}, ref: "ex/b:2"}}, layoutOpts{}),
			problem: map[string]error{"ex/a:1/usr/bin/x": nil, "ex/a:1/usr/bin/gone": nil, "ex/a:1/etc/o/a": nil, "ex/a:1/keep/z": nil,
				"ex/b:2/bin/x": nil, "ex/b:2/bin/h": container.ErrMember, "ex/b:2/bin/hh": container.ErrMember},
			links: map[string]string{"ex/b:2/bin/h": "ex/b:2/bin/x", "ex/b:2/bin/hh": "ex/b:2/bin/x"}},
		// docker load reads manifest.json, skopeo and podman index.json:
		// an image in one and not the other is not judged as shipped.
		{name: "manifest.json and index.json disagree", wantErr: signing.ErrMalformed, tarball: mkImage(
			[]img{{layers: [][]byte{base}, ref: "ex/a:1"}, {layers: [][]byte{upper}, ref: "ex/b:2"}},
			layoutOpts{dockerSave: true, dockerJSON: func(d []any) []any { return d[:1] }, indexJSON: func(b []byte) []byte {
				var ix map[string]any
				_ = json.Unmarshal(b, &ix)
				ix["manifests"] = ix["manifests"].([]any)[1:]
				b, _ = json.Marshal(ix)
				return b
			}})},
		{name: "index.json lists an image more", wantErr: signing.ErrMalformed, tarball: mkImage(
			[]img{{layers: [][]byte{base}, ref: "ex/a:1"}, {layers: [][]byte{upper}, ref: "ex/b:2"}},
			layoutOpts{dockerSave: true, dockerJSON: func(d []any) []any { return d[:1] }})},
		{name: "index.json beside manifest.json unreadable", wantErr: signing.ErrMalformed, tarball: mkImage(one(base),
			layoutOpts{dockerSave: true, indexJSON: func([]byte) []byte { return []byte("{") }})},
		{name: "image names overlap", wantErr: signing.ErrMalformed, tarball: mkImage(
			[]img{{layers: [][]byte{base}, ref: "ex/a"}, {layers: [][]byte{upper}, ref: "ex/a/usr"}}, layoutOpts{})},
		// tar -x lays down what docker load ignores.
		{name: "a file no image uses", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil, "usr/bin/gone": nil, "etc/o/a": nil, "keep/z": nil},
			tarball: mkImage(one(base), layoutOpts{extra: []tent{{name: "bin/evil.exe", data: []byte("MZ evil")}}})},
		{name: "a binary named repositories", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil, "usr/bin/gone": nil, "etc/o/a": nil, "keep/z": nil},
			tarball: mkImage(one(base), layoutOpts{extra: []tent{{name: "repositories", data: []byte("\x7fELF")}}})},
		{name: "what docker save writes beside the images", problem: map[string]error{"usr/bin/x": nil, "usr/bin/gone": nil, "etc/o/a": nil, "keep/z": nil},
			tarball: mkImage(one(base), layoutOpts{extra: []tent{{name: "repositories", data: []byte(`{"v1":{"latest":"x"}}`)},
				{name: strings.Repeat("a", 64) + "/json", data: []byte(`{}`)}, {name: strings.Repeat("a", 64) + "/VERSION", data: []byte("1.0")}}})},
		// A symbolic link's Link is its target in the image's root, with
		// the image's name when the tarball has several.
		{name: "symbolic links", tarball: mkImage([]img{{layers: [][]byte{base}, ref: "ex/a:1"}, {layers: [][]byte{
			mkTar([]tent{{name: "bin/x", data: []byte("x")}, {name: "bin/abs", typ: tar.TypeSymlink, link: "/bin/x"},
				{name: "bin/rel", typ: tar.TypeSymlink, link: "../../../bin/x"}}, nil)}, ref: "ex/b:2"}}, layoutOpts{}),
			problem: map[string]error{"ex/a:1/usr/bin/x": nil, "ex/a:1/usr/bin/gone": nil, "ex/a:1/etc/o/a": nil, "ex/a:1/keep/z": nil,
				"ex/b:2/bin/x": nil, "ex/b:2/bin/abs": container.ErrMember, "ex/b:2/bin/rel": container.ErrMember},
			links: map[string]string{"ex/b:2/bin/abs": "/ex/b:2/bin/x", "ex/b:2/bin/rel": "/ex/b:2/bin/x"}},
		{name: "layer digest", wantErr: signing.ErrMalformed, tarball: mkImage([]img{{layers: [][]byte{base}, badLayerDg: true}}, layoutOpts{})},
		{name: "diff_id", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil, "usr/bin/gone": nil, "etc/o/a": nil, "keep/z": nil},
			tarball: mkImage([]img{{layers: [][]byte{base}, badDiffID: true}}, layoutOpts{})},
		{name: "foreign layer", wantErr: signing.ErrMalformed, tarball: mkImage([]img{{layers: [][]byte{base}, dropBlob: true}}, layoutOpts{})},
		{name: "key twice", wantErr: signing.ErrMalformed, tarball: mkImage(one(base), layoutOpts{manifestJSON: func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"layers":`), []byte(`"layers":[],"layers":`), 1)
		}})},
		{name: "bytes after the index", wantErr: signing.ErrMalformed, tarball: mkImage(one(base), layoutOpts{indexJSON: func(b []byte) []byte {
			return append(b, []byte(`{}`)...)
		}})},
		{name: "index over the cap", wantErr: container.ErrLimit, tarball: mkImage(one(base), layoutOpts{indexJSON: func(b []byte) []byte {
			return append(b, bytes.Repeat([]byte(" "), limits.MaxImageManifest)...)
		}})},
		{name: "index nested deep", wantErr: signing.ErrMalformed, tarball: mkImage(one(base), layoutOpts{indexJSON: func(b []byte) []byte {
			return []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))
		}})},
		{name: "media type says gzip", wantErr: signing.ErrMalformed, tarball: mkImage([]img{{layers: [][]byte{base}, mediaType: mediaTypes["gzip"]}}, layoutOpts{})},
		{name: "media type says tar", wantErr: signing.ErrMalformed, tarball: mkImage([]img{{layers: [][]byte{gzBytes(base)}, plain: [][]byte{base}}}, layoutOpts{})},
		{name: "unknown media type", wantErr: signing.ErrMalformed, tarball: mkImage([]img{{layers: [][]byte{base}, mediaType: "application/x-squashfs"}}, layoutOpts{})},
		{name: "sha1 digest", wantErr: signing.ErrMalformed, tarball: mkImage(one(base), layoutOpts{indexJSON: func(b []byte) []byte {
			return []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"` + mtManifest + `","digest":"sha1:0000000000000000000000000000000000000000","size":1}]}`)
		}})},
		{name: "outer entry twice", wantErr: signing.ErrMalformed, tarball: mkImage(one(base), layoutOpts{extra: []tent{{name: "index.json", data: []byte("{}")}}})},
		{name: "outer device", wantErr: signing.ErrMalformed, tarball: mkImage(one(base), layoutOpts{extra: []tent{{name: "dev", typ: tar.TypeBlock}}})},
		{name: "bytes after a layer's end", wantErr: signing.ErrMalformed, tarball: mkImage(one(mkTar([]tent{{name: "a", data: []byte("a")}}, []byte("hidden"))), layoutOpts{})},
		{name: "member cap", wantErr: container.ErrLimit, lim: func(l *container.Limits) { l.MaxMembers = 3 },
			tarball: mkImage(one(base), layoutOpts{})},
		{name: "expanded size cap", wantErr: container.ErrLimit, lim: func(l *container.Limits) { l.MaxExpandedSize = 1 << 20 },
			tarball: mkImage([]img{{layers: [][]byte{zeros}, plain: [][]byte{zerosPlain}, mediaType: mediaTypes["gzip"]}}, layoutOpts{})},
		{name: "ratio cap", wantErr: container.ErrLimit, lim: func(l *container.Limits) { l.MaxRatio, l.RatioGrace = 100, 1<<16 },
			tarball: mkImage([]img{{layers: [][]byte{zeros}, plain: [][]byte{zerosPlain}, mediaType: mediaTypes["gzip"]}}, layoutOpts{})},
		{name: "ratio cap on a hidden file", wantErr: container.ErrLimit, lim: func(l *container.Limits) { l.MaxRatio, l.RatioGrace = 100, 1<<16 },
			tarball: mkImage([]img{{layers: [][]byte{zeros, gzBytes(mkTar([]tent{{name: ".wh.z"}}, nil))}, plain: [][]byte{zerosPlain, mkTar([]tent{{name: ".wh.z"}}, nil)},
				mediaType: mediaTypes["gzip"]}}, layoutOpts{})},
		{name: "layers over the cap", wantErr: container.ErrLimit, tarball: func() []byte {
			l := make([][]byte, limits.MaxImageLayers+1)
			for i := range l {
				l[i] = base
			}
			return mkImage(one(l...), layoutOpts{})
		}()},
		{name: "no manifest", wantErr: signing.ErrMalformed, tarball: mkTar([]tent{{name: "blobs/sha256/x", data: []byte("x")}}, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := defaultLimits()
			if tt.lim != nil {
				tt.lim(lim)
			}
			members, err := walkBytes(t, tt.tarball, lim)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Walk: %v, want %v", err, tt.wantErr)
			}
			if tt.problem == nil {
				return
			}
			seen := map[string]bool{}
			for _, g := range members {
				key := g.m.Name
				if seen[key] {
					key += "#2"
				}
				seen[key] = true
				want, ok := tt.problem[key]
				switch {
				case !ok:
					t.Errorf("unexpected member %q (%v)", key, g.m.Problem)
				case want == nil && g.m.Problem != nil:
					t.Errorf("%s: Problem %v", key, g.m.Problem)
				case want != nil && !errors.Is(g.m.Problem, want):
					t.Errorf("%s: Problem %v, want %v", key, g.m.Problem, want)
				}
			}
			for _, g := range members {
				if want, ok := tt.links[g.m.Name]; ok && g.m.Link != want {
					t.Errorf("%s: Link %q, want %q", g.m.Name, g.m.Link, want)
				}
			}
			for k := range tt.problem {
				if !seen[k] {
					t.Errorf("member %s not yielded", k)
				}
			}
		})
	}
}

func TestSniff(t *testing.T) {
	im := mkImage([]img{{layers: [][]byte{mkTar([]tent{{name: "a", data: []byte("a")}}, nil)}}}, layoutOpts{})
	for _, c := range []struct {
		name string
		head []byte
		want bool
	}{
		{"image", im, true},
		{"plain tar", mkTar([]tent{{name: "src/main.go", data: []byte("package main")}}, nil), false},
		{"legacy docker save", mkTar([]tent{{name: strings.Repeat("ab", 32) + "/", typ: tar.TypeDir}}, nil), true},
		{"not a tar", bytes.Repeat([]byte("x"), 1024), false},
		{"short", []byte("oci-layout"), false},
	} {
		head := c.head[:min(len(c.head), container.SniffSize)]
		if got := (Reader{}).Sniff(head, "x.tar"); got != c.want {
			t.Errorf("%s: Sniff = %v", c.name, got)
		}
	}
}

func TestYieldErrorAndCancel(t *testing.T) {
	im := mkImage([]img{{layers: [][]byte{mkTar([]tent{{name: "a", data: []byte("a")}, {name: "b", data: []byte("b")}}, nil)}}}, layoutOpts{})
	stop := errors.New("stop")
	n := 0
	err := Reader{}.Walk(context.Background(), bytes.NewReader(im), int64(len(im)), "i.tar", defaultLimits(),
		func(*container.Member, io.Reader) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Walk: %v after %d members", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Reader{}.Walk(ctx, bytes.NewReader(im), int64(len(im)), "i.tar", defaultLimits(),
		func(*container.Member, io.Reader) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with a canceled context: %v", err)
	}
}
