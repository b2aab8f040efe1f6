package impact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/textsafe"
)

// WriteText writes the inventories' impact for people: per inventory its
// counts, then each kind of change, grouped by deciding rule, each file
// with its old and new decision. Paths, rule ids and reasons come from the
// inventories and the policies: each line is written escaped
// (textsafe.Linef: nothing in them can end a line or forge another), names
// quoted.
func WriteText(w io.Writer, invs []*Inventory) {
	for _, inv := range invs {
		c := inv.Counts
		name := textsafe.Quote(inv.Name)
		if len(inv.Sources) != 1 || inv.Sources[0] != inv.Name {
			var q []string
			for _, s := range inv.Sources {
				q = append(q, textsafe.Quote(s))
			}
			name += " (" + strings.Join(q, ", ") + ")"
		}
		judged := fmt.Sprintf("%d binaries", c.Judged)
		if c.Judged == 1 {
			judged = "1 binary"
		}
		textsafe.Linef(w, "impact on %s: %s judged: %d newly blocked, %d would be blocked (audit), %d newly allowed, %d rule changed, %d unchanged",
			name, judged, c.NewlyBlocked, c.WouldBlockAudit, c.NewlyAllowed, c.RuleChanged, c.Unchanged)
		kind := Kind("")
		for _, g := range inv.Groups() {
			if g.Kind != kind {
				kind = g.Kind
				fmt.Fprintf(w, "  %s (%d):\n", kind, c.Of(kind))
			}
			textsafe.Linef(w, "    %s:", groupTitle(g.GroupKey))
			for _, f := range g.Files {
				textsafe.Linef(w, "      %s", f.Path) // Linef escapes the line
				textsafe.Linef(w, "        old: %s", sideText(f.Old))
				textsafe.Linef(w, "        new: %s", sideText(f.New))
			}
		}
	}
}

func groupTitle(k GroupKey) string {
	switch {
	case k.Rule == "":
		return "no rule decides under the new policy"
	case k.DecidedBy == "old":
		return fmt.Sprintf("rule %s of %s (old policy), which no longer decides", textsafe.Quote(k.Rule), textsafe.Quote(k.Policy))
	}
	return fmt.Sprintf("rule %s of %s", textsafe.Quote(k.Rule), textsafe.Quote(k.Policy))
}

func sideText(s Side) string {
	v := string(s.Verdict)
	if s.Verdict == cipolicy.Blocked && !s.Enforced {
		v = "blocked (audit)"
	}
	rule := "no rule"
	if s.Rule != "" {
		rule = "rule " + textsafe.Quote(s.Rule)
	}
	return fmt.Sprintf("%s, %s (%s): %s", v, rule, s.Kind, s.Reason) // escaped by Linef
}

// SARIF rule ids of the impact report.
const (
	RuleNewlyBlocked    = "CSV.Impact.NewlyBlocked"
	RuleWouldBlockAudit = "CSV.Impact.WouldBlockAudit"
	RuleNewlyAllowed    = "CSV.Impact.NewlyAllowed"
)

// FingerprintKey is the key of the impact report's SARIF
// partialFingerprints: a SHA-256 of the rule id, the inventory's name and
// the file's path.
const FingerprintKey = "csvImpact/v1"

var sarifRules = []struct {
	kind                  Kind
	id, name, short, full string
	level                 string
}{
	{NewlyBlocked, RuleNewlyBlocked, "NewlyBlocked", "The new policy blocks a binary the old one let run",
		"A host that enforces the new policy would not run this file, which ran under the old policy: rolling the change out risks an outage.", "error"},
	{WouldBlockAudit, RuleWouldBlockAudit, "WouldBlockAudit", "The new policy, in audit mode, would block a binary the old one allowed",
		"The new policy only audits, so hosts still run the file; once the policy enforces, they would not.", "note"},
	{NewlyAllowed, RuleNewlyAllowed, "NewlyAllowed", "The new policy lets run a binary the old one blocked",
		"A host that enforces the new policy would run this file, which the old policy blocked: the change loosens the policy for it.", "warning"},
}

// SARIFOptions add to the SARIF log.
type SARIFOptions struct {
	// ToolVersion is csv's version.
	ToolVersion string
	// Properties are the run's properties (what was compared).
	Properties map[string]any
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRun struct {
	Tool struct {
		Driver sarifDriver `json:"driver"`
	} `json:"tool"`
	Results    []sarifResult  `json:"results"`
	Properties map[string]any `json:"properties,omitempty"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	DefaultConfiguration map[string]any `json:"defaultConfiguration"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Kind                string            `json:"kind"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
	} `json:"physicalLocation"`
}

// WriteSARIF writes the inventories' impact as a SARIF 2.1.0 log with one
// run, following csv validate's conventions (csv/report/sarif.go): a
// result per newly blocked file (level error), per file the new policy
// would block in audit mode (note) and per newly allowed file (warning),
// located at the file on disk (a container member at its container, the
// message naming the member), with the deciding rules and both decisions
// in its properties. Files whose rule changed alone are not results.
func WriteSARIF(w io.Writer, invs []*Inventory, opts SARIFOptions) error {
	run := sarifRun{Results: []sarifResult{}, Properties: opts.Properties}
	run.Tool.Driver = sarifDriver{Name: "csv", InformationURI: "https://github.com/codesignval/csv", Version: opts.ToolVersion}
	index := map[Kind]int{}
	for i, r := range sarifRules {
		index[r.kind] = i
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: r.id, Name: r.name,
			ShortDescription: sarifText{r.short}, FullDescription: sarifText{r.full},
			DefaultConfiguration: map[string]any{"level": r.level}})
	}
	for _, inv := range invs {
		for _, c := range inv.Changes {
			i, ok := index[c.Kind]
			if !ok {
				continue
			}
			r := sarifRules[i]
			file, _, _ := strings.Cut(c.Path, container.Separator)
			var loc sarifLocation
			loc.PhysicalLocation.ArtifactLocation.URI = report.ArtifactURI(file)
			fp := sha256.Sum256([]byte(r.id + "\x00" + inv.Name + "\x00" + c.Path))
			props := map[string]any{"inventory": inv.Name, "change": c.Kind, "old": c.Old, "new": c.New}
			if k := c.Key(); k.Rule != "" {
				props["policyRule"] = k.Rule
				props["decidedBy"] = k.DecidedBy
			}
			run.Results = append(run.Results, sarifResult{RuleID: r.id, RuleIndex: i, Kind: "fail", Level: r.level,
				Message:             sarifText{fmt.Sprintf("%s (%s): %s: old: %s; new: %s", c.Path, inv.Name, c.Kind, plainSide(c.Old), plainSide(c.New))},
				Locations:           []sarifLocation{loc},
				PartialFingerprints: map[string]string{FingerprintKey: hex.EncodeToString(fp[:])},
				Properties:          props})
		}
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(textsafe.JSONWriter(w))
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// plainSide is sideText without escaping (JSON escapes for itself).
func plainSide(s Side) string {
	v := string(s.Verdict)
	if s.Verdict == cipolicy.Blocked && !s.Enforced {
		v = "blocked (audit)"
	}
	rule := "no rule"
	if s.Rule != "" {
		rule = fmt.Sprintf("rule %q", s.Rule)
	}
	return fmt.Sprintf("%s, %s: %s", v, rule, s.Reason)
}
