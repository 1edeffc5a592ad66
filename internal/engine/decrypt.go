package engine

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/decrypt"
	"converge.dev/converge/internal/object"
)

// Decryption opens SOPS-encrypted objects of a unit.
type Decryption struct {
	// AgeKeys are age secret keys, as age-keygen writes them.
	AgeKeys []string
}

// decryptObjects opens every SOPS-encrypted object, on copies: renders
// are cached encrypted, and the plaintext lives only in this sync's
// memory and in the cluster. An encrypted object in a unit without
// decryption is an error naming its file: applying ciphertext would
// corrupt a Secret.
func decryptObjects(objs []object.Decoded, d *Decryption) ([]object.Decoded, error) {
	var out []object.Decoded
	for i, o := range objs {
		if !decrypt.IsEncrypted(o.Object.Object) {
			if out != nil {
				out = append(out, o)
			}
			continue
		}
		if out == nil {
			out = append([]object.Decoded{}, objs[:i]...)
		}
		ref := object.RefOf(o.Object)
		if d == nil {
			return nil, fmt.Errorf("%s: %s is SOPS-encrypted but no decryption is configured", o.Source, ref)
		}
		ids, err := decrypt.Identities(d.AgeKeys...)
		if err != nil {
			return nil, fmt.Errorf("decryption keys: %w", err)
		}
		// The document as written, when the render kept it: SOPS checks
		// its MAC over the values in the file's order.
		data := o.Raw
		if data == nil {
			if data, err = yaml.Marshal(o.Object.Object); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", o.Source, ref, err)
			}
		}
		plain, err := decrypt.YAML(data, ids)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", o.Source, ref, err)
		}
		m, err := object.DecodeMap(plain)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: decrypted document: %w", o.Source, ref, err)
		}
		out = append(out, object.Decoded{Object: &unstructured.Unstructured{Object: m}, Source: o.Source})
	}
	if out == nil {
		return objs, nil
	}
	return out, nil
}
