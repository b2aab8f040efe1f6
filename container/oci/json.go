package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The JSON documents of an image, as far as csv reads them.

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	} `json:"platform"`
}

// index is an OCI image index (index.json, or a nested index).
type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// manifest is an OCI image manifest or a Docker image manifest v2
// schema 2 (the same shape).
type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// dockerEntry is one image of docker save's manifest.json.
type dockerEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// imageConfig is the part of an image configuration csv reads.
type imageConfig struct {
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

const maxJSONDepth = 64

// decodeStrict decodes one JSON value from b into v, refusing what Go's
// decoder lets pass and another image reader may read otherwise: a key
// stored twice in an object (Go keeps the last, other parsers the first),
// bytes after the value, and nesting past maxJSONDepth.
func decodeStrict(b []byte, v any) error {
	if err := checkJSON(b); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	return nil
}

func checkJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    bool // the next token in an object is a key
	}
	var stack []*frame
	values := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) != 0 || values != 1 {
				return errors.New("the JSON document is incomplete")
			}
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		} else if values++; values > 1 {
			return errors.New("bytes follow the JSON document")
		}
		if top != nil && top.object && top.key {
			if delim, ok := tok.(json.Delim); ok && delim == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if _, dup := top.keys[k]; dup {
				return fmt.Errorf("key %q is stored twice in one object", k)
			}
			top.keys[k] = struct{}{}
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true
		}
		if delim, ok := tok.(json.Delim); ok {
			switch delim {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("the JSON document nests deeper than %d", maxJSONDepth)
				}
				stack = append(stack, &frame{object: delim == '{', keys: map[string]struct{}{}, key: delim == '{'})
			case ']':
				stack = stack[:len(stack)-1]
			}
		}
	}
}
