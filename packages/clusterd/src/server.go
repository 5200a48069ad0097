package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
)

// membersResponse is the body of GET /v1/members.
type membersResponse struct {
	Cluster string   `json:"cluster"`
	Members []Member `json:"members"`
}

// registration is the body of POST /v1/members.
type registration struct {
	IP   string `json:"ip"`
	Role string `json:"role"`
}

// newHandler serves the member registry:
//
//	GET  /v1/members  -> {"cluster": NAME, "members": [{ip, role, last_seen}...]}
//	POST /v1/members  {"ip": IP, "role": ROLE} -> the member
func newHandler(reg *Registry, cluster string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, membersResponse{Cluster: cluster, Members: reg.List()})
	})
	mux.HandleFunc("POST /v1/members", func(w http.ResponseWriter, r *http.Request) {
		var body registration
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("decoding registration: %v", err)})
			return
		}
		m, changed, err := reg.Register(body.IP, body.Role)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if changed {
			log.Info("member joined", "ip", m.IP, "role", m.Role, "from", r.RemoteAddr)
		}
		writeJSON(w, http.StatusOK, m)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
