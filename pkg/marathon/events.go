package marathon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// triggers are the events that can change what the proxies should serve.
// Marathon 1.5+ reports instances rather than tasks, and deployments finish
// with their own events; all of them cause the same refresh.
var triggers = map[string]bool{
	"status_update_event":           true,
	"health_status_changed_event":   true,
	"api_post_event":                true,
	"app_terminated_event":          true,
	"instance_changed_event":        true,
	"instance_health_changed_event": true,
	"deployment_step_success":       true,
	"deployment_success":            true,
	"deployment_failed":             true,
}

// knownEvents bounds the metric's type label; the server decides the type
// string, so anything else counts as "other".
var knownEvents = map[string]bool{
	"event_stream_attached": true, "event_stream_detached": true,
	"deployment_info": true, "deployment_step_failure": true,
	"failed_health_check_event": true, "unhealthy_task_kill_event": true,
	"unhealthy_instance_kill_event": true, "framework_message_event": true,
	"add_health_check_event": true, "remove_health_check_event": true,
	"group_change_success": true, "group_change_failed": true,
	"pod_created_event": true, "pod_updated_event": true, "pod_deleted_event": true,
	"instance_launched_event": true, "unknown_instance_terminated_event": true,
}

// eventsPath asks Marathon (1.3+) to send only the events that trigger a
// refresh; older versions ignore the filter, so events are filtered here too.
var eventsPath = func() string {
	q := url.Values{}
	for t := range triggers {
		q.Add("event_type", t)
	}
	return "/v2/events?" + q.Encode()
}()

// maxLine bounds what is kept of one SSE line. Events such as
// deployment_info carry whole app definitions; only the type is needed.
const maxLine = 64 << 10

// readEvents parses a text/event-stream body and calls onEvent with the type
// of each event. It returns when the body ends or fails.
func readEvents(body io.Reader, onEvent func(typ string)) error {
	br := bufio.NewReaderSize(body, 32<<10)
	var evType, data string
	for {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = strings.TrimSuffix(line, "\r")
		switch {
		case line == "":
			typ := evType
			if typ == "" {
				typ = typeFromData(data)
			}
			if typ != "" {
				onEvent(typ)
			}
			evType, data = "", ""
		case line[0] == ':':
			// comment: Marathon's keep-alive
		default:
			field, val, _ := strings.Cut(line, ":")
			val = strings.TrimPrefix(val, " ")
			switch field {
			case "event":
				evType = val
			case "data":
				if data == "" {
					data = val
				}
			}
		}
	}
}

// readLine returns one line without its newline, truncated to maxLine.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf) < maxLine {
			buf = append(buf, chunk[:min(len(chunk), maxLine-len(buf))]...)
		}
		switch err {
		case nil:
			return string(bytes.TrimSuffix(buf, []byte("\n"))), nil
		case bufio.ErrBufferFull:
			continue
		default:
			return "", err
		}
	}
}

// typeFromData finds "eventType":"x" in a data line, for streams that send
// no event: field.
func typeFromData(data string) string {
	const key = `"eventType"`
	i := strings.Index(data, key)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(data[i+len(key):], " ")
	rest, ok := strings.CutPrefix(rest, ":")
	if !ok {
		return ""
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " "), `"`)
	if !ok {
		return ""
	}
	end := strings.IndexByte(rest, '"')
	if end < 0 || end > 100 {
		return ""
	}
	return rest[:end]
}

// streamEvents holds one event stream open and signals each triggering
// event on trigger without blocking: a full channel means a refresh is
// already queued, which covers this event too.
func (s *Source) streamEvents(ctx context.Context, trigger chan<- struct{}) (received bool, err error) {
	resp, rep, idx, err := s.client.get(ctx, eventsPath, "text/event-stream", s.opts.StreamIdleTimeout)
	if err != nil {
		streamConnects.WithLabelValues("error").Inc()
		return false, err
	}
	defer resp.Body.Close()
	streamConnects.WithLabelValues("ok").Inc()
	streamUp.Set(1)
	defer streamUp.Set(0)
	s.log.Info("event stream attached", "replica", rep.name)
	// Events may have been missed while no stream was open.
	signal(trigger)
	err = readEvents(resp.Body, func(typ string) {
		received = true
		label := typ
		if !triggers[typ] && !knownEvents[typ] {
			label = "other"
		}
		eventsTotal.WithLabelValues(label).Inc()
		if triggers[typ] {
			s.log.Debug("event", "type", typ)
			signal(trigger)
		}
	})
	err = readErr(resp.Body, err)
	if ctx.Err() != nil {
		return received, ctx.Err()
	}
	failuresTotal.WithLabelValues(rep.name).Inc()
	// A stream that went silent or broke: the next connection (and the
	// next refresh) starts at another replica.
	s.client.failed(idx)
	return received, fmt.Errorf("marathon %s: event stream: %w", rep.name, err)
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
