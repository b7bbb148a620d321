package marathon

import (
	"errors"
	"fmt"
	"io"
)

// decodeApp reads GET /v2/apps/{id}?embed=app.tasks, {"app": {...}}, with
// the same per-app decoding (and rules) as the /v2/apps stream.
func decodeApp(r io.Reader) (*app, error) {
	s := &scanner{r: r, buf: make([]byte, 16<<10)}
	var a *app
	err := s.object(func(key []byte) error {
		if string(key) != "app" {
			return s.skip()
		}
		if a != nil {
			return errors.New(`"app" given twice`)
		}
		if null, err := s.null(); null || err != nil {
			if err == nil {
				err = errors.New(`"app" is null`)
			}
			return err
		}
		a = &app{}
		s.depth = 0
		if err := s.app(a); err != nil {
			return fmt.Errorf("app: %w", err)
		}
		return nil
	})
	if err == nil && a == nil {
		err = errors.New(`no "app" object in the response`)
	}
	if err == nil {
		err = onlyWhitespaceLeft(s)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// decodeAppVersion reads GET /v2/apps/{id}/versions/{version}: the app
// definition itself, an app object without tasks.
func decodeAppVersion(r io.Reader) (*app, error) {
	s := &scanner{r: r, buf: make([]byte, 16<<10)}
	if null, err := s.null(); null || err != nil {
		if err == nil {
			err = errors.New("version is null")
		}
		return nil, err
	}
	a := &app{}
	if err := s.app(a); err != nil {
		return nil, err
	}
	if err := onlyWhitespaceLeft(s); err != nil {
		return nil, err
	}
	a.Tasks = nil // a definition has none; never take tasks from here
	return a, nil
}

// onlyWhitespaceLeft refuses anything but whitespace after the document, as
// encoding/json does.
func onlyWhitespaceLeft(s *scanner) error {
	c, err := s.peek()
	if err == nil {
		return s.errorf("data after the document: %s", describe(c))
	}
	if s.rerr == io.EOF {
		return nil
	}
	return err
}
