package config

import "strings"

// AppServices is Synapse's app_service_config_files: the registration
// files of the application services (bridges, bots) this server hosts.
// A file that cannot be read or parsed stops start-up, naming the file
// and the field (internal/appservice.Load).
type AppServices struct {
	Files []string `yaml:"files"`
}

// splitList splits a comma-separated environment value, dropping empty
// entries.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
