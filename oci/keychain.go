package oci

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// maxConfigBytes bounds a credentials file.
const maxConfigBytes = 1 << 20

// ConfigKeychain reads registry credentials from a Docker config.json
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json): an
// auths entry's base64 "auth", its username and password, or its
// identity token. It runs no credential helpers. ingot uses it instead of
// go-containerregistry's default keychain, which links Docker's CLI
// configuration code (about 0.2 MB, most of it for helpers a device does
// not have) into the device binary.
func ConfigKeychain() authn.Keychain { return configKeychain{} }

type configKeychain struct{}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

func (configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	auths, err := readDockerAuths(dockerConfigPath())
	if err != nil {
		return nil, err
	}
	host := r.RegistryStr()
	for _, key := range []string{host, "https://" + host, "http://" + host, "https://" + host + "/v1/", "https://" + host + "/v2/"} {
		if a, ok := auths[key]; ok {
			return authenticator(a, key)
		}
	}
	return authn.Anonymous, nil
}

func dockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

func readDockerAuths(path string) (map[string]dockerAuth, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err == nil && len(b) > maxConfigBytes {
		err = fmt.Errorf("larger than %d bytes", maxConfigBytes)
	}
	var cfg struct {
		Auths map[string]dockerAuth `json:"auths"`
	}
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("registry credentials %s: %w", path, err)
	}
	return cfg.Auths, nil
}

func authenticator(a dockerAuth, key string) (authn.Authenticator, error) {
	c := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}
	if a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		user, pass, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			return nil, fmt.Errorf("registry credentials for %s: \"auth\" is not base64 of user:password", key)
		}
		c.Username, c.Password = user, pass
	}
	return authn.FromConfig(c), nil
}
