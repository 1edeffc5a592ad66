// Package decrypt opens SOPS-encrypted manifests with age identities,
// using github.com/getsops/sops/v3 and filippo.io/age, as Flux's
// decryption does. Only age is supported: identities come from the
// caller, never from the process's environment or files. Errors never
// carry decrypted data.
package decrypt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// Identities parses age secret keys ("AGE-SECRET-KEY-1..." lines; blank
// lines and # comments are skipped).
func Identities(keys ...string) ([]age.Identity, error) {
	var out []age.Identity
	for _, k := range keys {
		ids, err := age.ParseIdentities(strings.NewReader(k))
		if err != nil {
			return nil, fmt.Errorf("age identities: %w", err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// ErrNoKey means none of the identities opens the file.
var ErrNoKey = errors.New("no age identity can decrypt it")

// IsEncrypted reports whether a YAML document carries SOPS metadata.
func IsEncrypted(doc map[string]any) bool {
	m, ok := doc["sops"].(map[string]any)
	return ok && m["mac"] != nil
}

// YAML decrypts one SOPS-encrypted YAML document and checks its MAC, so
// a file edited after encryption is refused.
func YAML(data []byte, ids []age.Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, ErrNoKey
	}
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{})
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("sops: %w", err)
	}
	if len(tree.Metadata.KeyGroups) > 1 {
		return nil, errors.New("sops: key groups with Shamir secret sharing are not supported")
	}
	var key []byte
	for _, group := range tree.Metadata.KeyGroups {
		for _, k := range group {
			mk, ok := k.(*sopsage.MasterKey)
			if !ok {
				continue
			}
			sopsage.ParsedIdentities(ids).ApplyToMasterKey(mk)
			if dk, err := mk.Decrypt(); err == nil {
				key = dk
				break
			}
		}
	}
	if key == nil {
		return nil, fmt.Errorf("sops: %w", ErrNoKey)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("sops: decrypt: %w", err)
	}
	want, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("sops: MAC: %w", err)
	}
	if s, _ := want.(string); s != mac {
		return nil, errors.New("sops: MAC mismatch: the file was changed after it was encrypted")
	}
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("sops: %w", err)
	}
	return out, nil
}

// YAMLEncrypt encrypts the data and stringData of a YAML document (a
// Secret) for age recipients, as `sops --encrypt --age R
// --encrypted-regex '^(data|stringData)$'` does.
func YAMLEncrypt(plain []byte, recipients ...string) ([]byte, error) {
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{})
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return nil, fmt.Errorf("sops: %w", err)
	}
	var group sops.KeyGroup
	for _, r := range recipients {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, fmt.Errorf("sops: recipient: %w", err)
		}
		group = append(group, mk)
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{KeyGroups: []sops.KeyGroup{group},
		EncryptedRegex: "^(data|stringData)$", Version: "3.13.3"}}
	key, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		return nil, fmt.Errorf("sops: data key: %w", errors.Join(errs...))
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("sops: encrypt: %w", err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, key, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		return nil, fmt.Errorf("sops: MAC: %w", err)
	}
	return store.EmitEncryptedFile(tree)
}
