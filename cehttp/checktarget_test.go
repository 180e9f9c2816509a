package cehttp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventkit/eventkit/cehttp"
)

func TestCheckPublicTarget(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"http://127.0.0.1:8080/hook", "http://[::1]/", "https://10.1.2.3/", "http://192.168.0.9/",
		"http://169.254.169.254/latest/meta-data", "http://100.64.0.1/", "http://0.0.0.0/",
		"http://[::ffff:127.0.0.1]/", "http://localhost:9000/",
	} {
		if err := cehttp.CheckPublicTarget(ctx, u); !errors.Is(err, cehttp.ErrTargetRefused) {
			t.Errorf("CheckPublicTarget(%s) = %v, want ErrTargetRefused", u, err)
		}
	}
	for _, u := range []string{"https://93.184.215.14/hook", "http://[2606:4700::1111]:8443/"} {
		if err := cehttp.CheckPublicTarget(ctx, u); err != nil {
			t.Errorf("CheckPublicTarget(%s) = %v, want nil", u, err)
		}
	}
	for _, u := range []string{"http:///nohost", "://bad", "http://name.invalid/"} {
		err := cehttp.CheckPublicTarget(ctx, u)
		if err == nil || errors.Is(err, cehttp.ErrTargetRefused) {
			t.Errorf("CheckPublicTarget(%s) = %v, want an error other than ErrTargetRefused", u, err)
		}
	}
}
