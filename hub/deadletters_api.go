package hub

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/deadletter"
	"github.com/prometheus/client_golang/prometheus"
)

// deadLetterAPI serves /deadletters: the dead letters of the webhook
// subscriptions, read from the embedded store, re-driven to their
// original topic or purged.
//
//	GET    /deadletters?subscription=NAME&after=POS&limit=N  NDJSON items, each with "subscription" (read)
//	GET    /deadletters/{position}                           one item (read)
//	POST   /deadletters/{position}/redrive                   re-publish, then delete; the item as re-published (admin)
//	POST   /deadletters/redrive?subscription=NAME            re-drive all of one subscription: {"redriven":n} (admin)
//	DELETE /deadletters/{position}                           delete one: 204 (admin)
//	DELETE /deadletters?subscription=NAME                    purge one subscription's: {"purged":n} (admin)
type deadLetterAPI struct {
	s        *Server
	store    deadletter.Store // nil without the JetStream API
	redriven *prometheus.CounterVec
}

// newDeadLetterAPI makes the API and registers its metric,
// eventkit_subscription_redriven_total{subscription}.
func newDeadLetterAPI(s *Server) *deadLetterAPI {
	a := &deadLetterAPI{s: s, redriven: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "eventkit", Subsystem: "subscription", Name: "redriven_total",
		Help: "Dead letters re-driven to their original topic, by subscription.",
	}, []string{"subscription"})}
	s.reg.MustRegister(a.redriven)
	if rd, err := s.storeReader(); err == nil {
		a.store = jsDeadLetters{s: s, rd: rd}
	}
	return a
}

func (a *deadLetterAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, item := strings.CutPrefix(r.URL.Path, "/deadletters/")
	scope := ScopeRead
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		scope = ScopeAdmin
	}
	if !a.s.auth.allow(w, r, scope, false) {
		return
	}
	if a.store == nil {
		problem(w, http.StatusNotImplemented, "dead letters are read from the embedded JetStream store, which this server does not use")
		return
	}
	pos, verb, _ := strings.Cut(rest, "/")
	switch {
	case !item:
		a.collection(w, r)
	case pos == "redrive" && verb == "":
		if allowMethods(w, r, http.MethodPost) {
			a.redriveAll(w, r)
		}
	case verb == "redrive":
		if allowMethods(w, r, http.MethodPost) {
			a.redrive(w, r, pos)
		}
	case verb == "":
		a.one(w, r, pos)
	default:
		problem(w, http.StatusNotFound, "no route "+strconv.Quote(r.URL.Path))
	}
}

// collection serves GET (list) and DELETE (purge) /deadletters.
func (a *deadLetterAPI) collection(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodDelete) {
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodDelete {
		sub, ok := requiredSubscription(w, r)
		if !ok {
			return
		}
		n, err := deadletter.Purge(r.Context(), a.store, sub)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"purged": n})
		return
	}
	limit, ok := limitParam(w, q.Get("limit"), deadletter.DefaultLimit, deadletter.MaxLimit)
	if !ok {
		return
	}
	items, err := a.store.List(r.Context(), deadletter.Query{Subscription: q.Get("subscription"), After: q.Get("after"), Limit: limit})
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return
		}
	}
}

// one serves GET and DELETE /deadletters/{position}.
func (a *deadLetterAPI) one(w http.ResponseWriter, r *http.Request, pos string) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodDelete) {
		return
	}
	if r.Method == http.MethodDelete {
		if err := a.store.Delete(r.Context(), pos); err != nil {
			a.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	it, err := a.store.Get(r.Context(), pos)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

// redrive serves POST /deadletters/{position}/redrive.
func (a *deadLetterAPI) redrive(w http.ResponseWriter, r *http.Request, pos string) {
	dl, err := a.store.Get(r.Context(), pos)
	if err != nil {
		a.fail(w, err)
		return
	}
	it, repeated, err := deadletter.Redrive(r.Context(), a.store, pos)
	if err != nil {
		a.fail(w, err)
		return
	}
	if !repeated {
		a.redriven.WithLabelValues(dl.Subscription).Inc()
	}
	writeJSON(w, http.StatusOK, it)
}

// redriveAll serves POST /deadletters/redrive?subscription=NAME.
func (a *deadLetterAPI) redriveAll(w http.ResponseWriter, r *http.Request) {
	sub, ok := requiredSubscription(w, r)
	if !ok {
		return
	}
	n, err := deadletter.RedriveAll(r.Context(), a.store, sub)
	a.redriven.WithLabelValues(sub).Add(float64(n))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"redriven": n})
}

// fail answers err: 404 for a missing dead letter, 400 for a bad request,
// the problem err carries, else 500.
func (a *deadLetterAPI) fail(w http.ResponseWriter, err error) {
	var bad *badRequest
	var p *cehttp.Problem
	switch {
	case errors.Is(err, deadletter.ErrNotFound):
		problem(w, http.StatusNotFound, err.Error())
	case errors.As(err, &bad):
		problem(w, http.StatusBadRequest, bad.detail)
	case errors.As(err, &p):
		writeErr(w, p)
	default:
		a.s.log.Warn("dead letters", "err", err)
		problem(w, http.StatusInternalServerError, err.Error())
	}
}

// requiredSubscription reads the subscription parameter, answering 400
// without it.
func requiredSubscription(w http.ResponseWriter, r *http.Request) (string, bool) {
	sub := r.URL.Query().Get("subscription")
	if sub == "" {
		problem(w, http.StatusBadRequest, "subscription: required (the name of the subscription whose dead letters to act on)")
		return "", false
	}
	return sub, true
}

// allowMethods answers 405 unless r's method is one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	problem(w, http.StatusMethodNotAllowed, r.URL.Path+" answers "+strings.Join(methods, ", "))
	return false
}

// limitParam reads a limit parameter: def when empty, at most max.
func limitParam(w http.ResponseWriter, v string, def, most int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		problem(w, http.StatusBadRequest, "limit: want a number from 1 to "+strconv.Itoa(most))
		return 0, false
	}
	return n, true
}
