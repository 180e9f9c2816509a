package pgrepl

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestSetTextForms: the settings that fix the text forms of values are set
// on a configuration without startup parameters, and replace what a DSN
// gave, keeping its other parameters.
func TestSetTextForms(t *testing.T) {
	cfg, err := pgconn.ParseConfig("postgres://u@127.0.0.1/db?DateStyle=SQL&application_name=app")
	if err != nil {
		t.Fatal(err)
	}
	SetTextForms(cfg)
	want := map[string]string{"DateStyle": "ISO", "TimeZone": "UTC", "IntervalStyle": "iso_8601", "extra_float_digits": "3", "application_name": "app"}
	for k, v := range want {
		if cfg.RuntimeParams[k] != v {
			t.Errorf("%s = %q, want %q", k, cfg.RuntimeParams[k], v)
		}
	}
	empty := &pgconn.Config{}
	SetTextForms(empty)
	if empty.RuntimeParams["TimeZone"] != "UTC" {
		t.Fatalf("no startup parameters: %v", empty.RuntimeParams)
	}
}
