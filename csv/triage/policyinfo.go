package triage

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// PolicyInfoID returns the PolicyInfo Id setting of a SiPolicy XML
// document (<Setting Provider="PolicyInfo" Key="Information"
// ValueName="Id"><Value><String>ID</String></Value></Setting>), which
// Code Integrity events report as PolicyID (and event 3099 as
// PolicyIdBuffer); "" when the document has none or is not SiPolicy XML
// (YAML policies have none). The policy itself is read by package
// cipolicy; this reads only the one setting that package does not keep.
func PolicyInfoID(data []byte) string {
	text, err := decodeText(data, "policy")
	if err != nil || !bytes.Contains(text, []byte("PolicyInfo")) {
		return ""
	}
	dec := xml.NewDecoder(bytes.NewReader(text))
	dec.Strict = true
	inSetting, inString := false, false
	var val strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.Directive:
			return ""
		case xml.StartElement:
			switch t.Name.Local {
			case "Setting":
				var p, k, v string
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "Provider":
						p = a.Value
					case "Key":
						k = a.Value
					case "ValueName":
						v = a.Value
					}
				}
				inSetting = p == "PolicyInfo" && k == "Information" && v == "Id"
			case "String":
				inString = inSetting
			}
		case xml.CharData:
			if inString && val.Len() < 1024 {
				val.Write(t)
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "String":
				if inString {
					return strings.TrimSpace(val.String())
				}
			case "Setting":
				inSetting = false
			}
		}
	}
}
