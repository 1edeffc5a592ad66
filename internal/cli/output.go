package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeYAML(w io.Writer, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// writeStructured prints v as json or yaml; ok is false for any other
// format, which the caller prints its own way.
func writeStructured(w io.Writer, format string, v any) (ok bool, err error) {
	switch format {
	case "json":
		return true, writeJSON(w, v)
	case "yaml":
		return true, writeYAML(w, v)
	case "", "wide":
		return false, nil
	}
	return true, fmt.Errorf("output format %q: use json or yaml", format)
}
