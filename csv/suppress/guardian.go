package suppress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/codesignval/csv/internal/limits"
)

// A Guardian suppressions file (.gdnsuppress, usually at
// .config/guardian/.gdnsuppress), as the files Microsoft's repositories
// check in show it (no specification is public):
//
//	{
//	  "hydrated": true,
//	  "properties": {"helpUri": "...", "hydrationStatus": "..."},
//	  "version": "1.0.0",
//	  "suppressionSets": {"default": {"name": "default", "createdDate": "2025-01-28 06:29:05Z", "lastUpdatedDate": "..."}},
//	  "results": {
//	    "6216d347...": {
//	      "signature": "6216d347...", "alternativeSignatures": ["46ad2109..."],
//	      "target": "CommonScripts/x.ps1", "line": 35, "memberOf": ["default"],
//	      "tool": "binskim", "ruleId": "BA2008", "justification": "...",
//	      "createdDate": "2025-08-25 17:54:06Z", "expirationDate": null
//	    }
//	  }
//	}
//
// A result is identified by its signature, a SHA-256 Guardian computes
// over the finding by a method it does not publish: csv cannot compute it,
// so a result applies only through its hydrated fields, a target and a
// rule id.

type gdnFile struct {
	Hydrated        *bool                `json:"hydrated"`
	Properties      map[string]string    `json:"properties"`
	Version         string               `json:"version"`
	SuppressionSets map[string]gdnSet    `json:"suppressionSets"`
	Results         map[string]gdnResult `json:"results"`
}

type gdnSet struct {
	Name            string `json:"name"`
	CreatedDate     string `json:"createdDate"`
	LastUpdatedDate string `json:"lastUpdatedDate"`
}

type gdnResult struct {
	Signature             string   `json:"signature"`
	AlternativeSignatures []string `json:"alternativeSignatures"`
	Target                string   `json:"target"`
	Line                  int      `json:"line"`
	MemberOf              []string `json:"memberOf"`
	Tool                  string   `json:"tool"`
	RuleID                string   `json:"ruleId"`
	Justification         string   `json:"justification"`
	CreatedDate           string   `json:"createdDate"`
	ExpirationDate        *string  `json:"expirationDate"`
}

var gdnSignature = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseGuardian reads a Guardian .gdnsuppress file. The JSON is read
// strictly: one object, no repeated key, no field csv does not know, at
// most limits.MaxSuppressionDepth levels, every string within
// limits.MaxSuppressionText. A result becomes an Entry when it names a
// rule csv reports (ruleId: a SARIF rule id such as
// CodeSign.MissingSigningCert, or a reason kind) and a target csv can
// match (a path relative to the repository: the validated root's paths
// are matched against it literally); it must then have a justification.
// Every other result is counted in File.Unmapped with the reason: results
// of other tools' rules, results of an unhydrated file (a signature
// alone), absolute targets (a build agent's file:///D:/a/_work/...).
func ParseGuardian(data []byte, source string) (*File, error) {
	fail := func(format string, args ...any) (*File, error) {
		return nil, &LoadError{Source: source, Problems: []Problem{{Message: "gdnsuppress: " + fmt.Sprintf(format, args...)}}}
	}
	if len(data) > limits.MaxSuppressionFile {
		return fail("larger than %d bytes", limits.MaxSuppressionFile)
	}
	if err := checkJSON(data); err != nil {
		return fail("%v", err)
	}
	var g gdnFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return fail("%v", err)
	}
	if g.Version != "1.0.0" {
		return fail("version %q: csv reads version 1.0.0", g.Version)
	}
	if g.Results == nil {
		return fail("no \"results\" object")
	}
	if len(g.Results) > limits.MaxSuppressions {
		return fail("%d results: more than %d", len(g.Results), limits.MaxSuppressions)
	}
	f := &File{Source: source, Format: "gdnsuppress"}
	var problems []Problem
	unmapped := map[string]int{}
	keys := make([]string, 0, len(g.Results))
	for k := range g.Results {
		keys = append(keys, k)
	}
	// A JSON object has no order: the entries are in signature order.
	slices.Sort(keys)
	for _, k := range keys {
		r := g.Results[k]
		what := fmt.Sprintf("result %.16s", k)
		if !gdnSignature.MatchString(k) || r.Signature != k {
			problems = append(problems, Problem{Message: fmt.Sprintf("gdnsuppress: %s: its key and signature must be the same 64 lowercase hexadecimal digits", what)})
			continue
		}
		for _, set := range r.MemberOf {
			if _, ok := g.SuppressionSets[set]; !ok {
				problems = append(problems, Problem{Message: fmt.Sprintf("gdnsuppress: %s: member of suppression set %q, which the file does not define", what, set)})
			}
		}
		kind, known := RuleKind(r.RuleID)
		switch {
		case r.Target == "" && r.RuleID == "":
			unmapped["no target and no rule id (an unhydrated result: csv cannot compute Guardian's signatures)"]++
			continue
		case !known:
			unmapped["a rule csv does not report (another tool's)"]++
			continue
		case r.Target == "":
			unmapped["no target (csv cannot compute Guardian's signatures)"]++
			continue
		}
		target, why := gdnTarget(r.Target)
		if why != "" {
			unmapped[why]++
			continue
		}
		e := &Entry{Source: source, ID: k, Path: escapeGlob(target), Rule: r.RuleID, Kind: kind,
			Justification: r.Justification, Tool: r.Tool}
		if r.ExpirationDate != nil && *r.ExpirationDate != "" {
			t, err := gdnDate(*r.ExpirationDate)
			if err != nil {
				problems = append(problems, Problem{Message: fmt.Sprintf("gdnsuppress: %s: expirationDate %q: %v", what, *r.ExpirationDate, err)})
				continue
			}
			e.Expires = t
		}
		check(e, func(format string, args ...any) {
			problems = append(problems, Problem{Message: fmt.Sprintf("gdnsuppress: %s: ", what) + fmt.Sprintf(format, args...)})
		})
		f.Entries = append(f.Entries, e)
	}
	duplicates(f.Entries, func(e *Entry, format string, args ...any) {
		problems = append(problems, Problem{Message: fmt.Sprintf("gdnsuppress: result %.16s: ", e.ID) + fmt.Sprintf(format, args...)})
	})
	if len(problems) > 0 {
		return nil, &LoadError{Source: source, Problems: problems}
	}
	for why, n := range unmapped {
		f.Unmapped = append(f.Unmapped, fmt.Sprintf("%d results not applied: %s", n, why))
	}
	slices.Sort(f.Unmapped)
	return f, nil
}

// gdnTarget turns a result's target into the path csv matches, or says
// why it cannot.
func gdnTarget(t string) (string, string) {
	if strings.Contains(t, "://") || strings.HasPrefix(t, "file:") {
		u, err := url.Parse(t)
		if err != nil || u.Scheme != "file" {
			return "", "a target that is not a file path"
		}
		return "", "an absolute target (a build agent's path: csv matches paths relative to the validated root)"
	}
	t = strings.ReplaceAll(t, `\`, "/")
	if strings.HasPrefix(t, "/") || (len(t) > 1 && t[1] == ':') {
		return "", "an absolute target (a build agent's path: csv matches paths relative to the validated root)"
	}
	c := path.Clean(t)
	if c != t || c == "." || strings.HasPrefix(c, "../") || c == ".." {
		return "", "a target that is not a clean relative path"
	}
	return c, ""
}

// escapeGlob makes a literal path a glob that matches only it.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// gdnDate reads a Guardian date ("2025-08-30 01:55:37Z"): the entry
// applies through that day (UTC).
func gdnDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05Z07:00", time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
		}
	}
	return time.Time{}, errors.New("want a date such as 2025-08-30 01:55:37Z")
}

// checkJSON checks what encoding/json lets pass: one value, no repeated
// key in an object (the last would win silently), nesting, and the
// length of each string.
func checkJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	values := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return errors.New("more than one JSON value")
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && len(s) > limits.MaxSuppressionText {
			return fmt.Errorf("a string longer than %d bytes", limits.MaxSuppressionText)
		}
		if top != nil && top.object && top.expectKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return fmt.Errorf("key %q repeated in an object", k)
				}
				top.keys[k] = true
				top.expectKey = false
				continue
			}
			// The object's end: the decoder refuses anything else here.
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= limits.MaxSuppressionDepth {
				return fmt.Errorf("nested deeper than %d levels", limits.MaxSuppressionDepth)
			}
			stack = append(stack, &frame{object: tok == json.Delim('{'), keys: map[string]bool{}, expectKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value is done: the enclosing object's next token is a key.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].expectKey = true
		}
	}
}
