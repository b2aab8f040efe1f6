package report

import (
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/format"
)

// FileDoc is the JSON form of one inspected file, as csv inspect --format
// json writes it. Its JSON has a field per digest, named as cipolicy names
// the algorithm, and the format's facts under the format's name, as the
// validation report has them.
type FileDoc struct {
	Path   string          `json:"path"`
	Format cipolicy.Format `json:"format"`
	Size   int64           `json:"size"`
	// Digests are written after size.
	Digests    DigestDocs               `json:"-"`
	Signed     bool                     `json:"signed"`
	Signatures []SignatureDoc           `json:"signatures"`
	Attributes *cipolicy.FileAttributes `json:"version_info,omitempty"`
	// Info is the format's own facts, written after the version info under
	// the format's name ("pe", "elf").
	Info format.Info `json:"-"`
	// Container is the kind of container the file is ("zip"), whose
	// members are listed after it.
	Container container.Kind `json:"container,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// FileDocOf is the document of what csv.InspectFile found in the file at
// path (as given: inspect names files as its arguments do).
func FileDocOf(path string, in *csv.Inspection) FileDoc {
	d := FileDoc{Path: path, Format: in.Format, Size: in.Size, Digests: DigestDocsOf(in.Digests), Signed: in.Signed(),
		Info: in.Info, Signatures: SignatureDocs(in.Signatures), Attributes: in.Attributes, Container: in.Container}
	if in.Err != nil {
		d.Error = in.Err.Error()
	}
	return d
}

// MarshalJSON writes the file with its digests and facts in place.
func (d FileDoc) MarshalJSON() ([]byte, error) {
	type head struct {
		Path   string          `json:"path"`
		Format cipolicy.Format `json:"format"`
		Size   int64           `json:"size"`
	}
	type mid struct {
		Signed     bool                     `json:"signed"`
		Signatures []SignatureDoc           `json:"signatures"`
		Attributes *cipolicy.FileAttributes `json:"version_info,omitempty"`
	}
	type tail struct {
		Container container.Kind `json:"container,omitempty"`
		Error     string         `json:"error,omitempty"`
	}
	var facts *Facts
	if d.Info != nil {
		facts = &Facts{Format: d.Format, Value: d.Info}
	}
	return ObjectWithFacts(head{d.Path, d.Format, d.Size}, d.Digests, mid{d.Signed, d.Signatures, d.Attributes}, facts, tail{d.Container, d.Error})
}
