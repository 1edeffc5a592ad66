package server

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui
var assets embed.FS

// ui serves the embedded page and its scripts: no Node toolchain builds
// them, they are written as the browser runs them.
func ui() http.Handler {
	sub, _ := fs.Sub(assets, "ui")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		if _, err := fs.Stat(sub, trim(r.URL.Path)); err != nil {
			// A client-side route (/units/...): the page handles it.
			r.URL.Path = "/"
		}
		files.ServeHTTP(w, r)
	})
}

func trim(p string) string {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	if p == "" {
		return "index.html"
	}
	return p
}
