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
	"sync/atomic"
	"time"
)

// subscribed are the events asked for (Marathon 1.3.7+ filters the stream
// by event_type; older versions send everything and the rest is sorted out
// in parseEvent). Task and health changes are applied from the payload;
// API and deployment events name the apps to read again.
//
// instance_changed_event and instance_health_changed_event are not asked
// for: Marathon publishes status_update_event and
// health_status_changed_event for the same changes of app tasks, and the
// instance events alone are about pods, which /v2/apps does not list.
var subscribed = []string{
	"status_update_event",
	"health_status_changed_event",
	"api_post_event",
	"app_terminated_event",
	"deployment_step_success",
	"deployment_success",
	"deployment_failed",
	"group_change_success",
}

// ignored are event types known not to change what is served, or always
// followed by one of the subscribed events that does (a failed health
// check by health_status_changed_event, a deployment's start by its
// steps, a kill by status updates). Any other type that arrives is a type
// this code does not know, and answered by a full read.
var ignored = map[string]bool{
	"event_stream_attached": true, "event_stream_detached": true,
	"deployment_info": true, "deployment_step_failure": true,
	"failed_health_check_event": true, "unhealthy_task_kill_event": true,
	"unhealthy_instance_kill_event": true, "framework_message_event": true,
	"add_health_check_event": true, "remove_health_check_event": true,
	"group_change_failed": true,
	"pod_created_event":   true, "pod_updated_event": true, "pod_deleted_event": true,
	"instance_launched_event": true, "unknown_instance_terminated_event": true,
	"subscribe_event": true, "unsubscribe_event": true,
	"scheduler_registered_event": true, "scheduler_reregistered_event": true,
	"scheduler_disconnected_event": true,
}

// eventsPath asks Marathon for the subscribed events only.
var eventsPath = func() string {
	q := url.Values{}
	for _, t := range subscribed {
		q.Add("event_type", t)
	}
	return "/v2/events?" + q.Encode()
}()

// maxData bounds what is kept of one event's data. Deployment events carry
// the whole original and target groups of the plan (megabytes in a large
// cluster); beyond this bound the event cannot be read and is answered by
// a full read. Other lines (comments, unknown fields) keep maxLine.
const (
	maxData = 16 << 20
	maxLine = 64 << 10
)

// readEvents parses a text/event-stream body and calls onEvent with the
// type and data of each event; truncated reports data cut at maxData. It
// returns when the body ends or fails.
func readEvents(body io.Reader, onEvent func(typ string, data []byte, truncated bool)) error {
	br := bufio.NewReaderSize(body, 32<<10)
	var evType string
	var data []byte
	truncated, hasData := false, false
	for {
		line, cut, err := readLine(br, maxData)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			typ := evType
			if typ == "" {
				typ = typeFromData(data)
			}
			if typ != "" {
				onEvent(typ, data, truncated)
			}
			evType, data, truncated, hasData = "", nil, false, false
		case line[0] == ':':
			// comment: Marathon's keep-alive
		default:
			field, val, _ := bytes.Cut(line, []byte(":"))
			val = bytes.TrimPrefix(val, []byte(" "))
			switch string(field) {
			case "event":
				evType = string(val[:min(len(val), maxLine)])
			case "data":
				// Marathon sends one data line; a second one (allowed by
				// SSE) is joined with a newline, as the spec says. The
				// newline counts against maxData too: a replica sending
				// data lines forever must not grow one event without bound.
				if hasData {
					if len(data) >= maxData {
						truncated = true
						continue
					}
					data = append(data, '\n')
				}
				hasData = true
				room := maxData - len(data)
				if len(val) > room {
					val, cut = val[:max(room, 0)], true
				}
				data = append(data, val...)
				truncated = truncated || cut
			}
		}
	}
}

// readLine returns one line without its newline, truncated to limit bytes
// (cut reports it).
func readLine(br *bufio.Reader, limit int) (line []byte, cut bool, err error) {
	var buf []byte
	total := 0
	for {
		chunk, err := br.ReadSlice('\n')
		content := chunk
		if err == nil {
			content = chunk[:len(chunk)-1]
		}
		total += len(content)
		if room := limit - len(buf); room > 0 {
			buf = append(buf, content[:min(room, len(content))]...)
		}
		switch err {
		case nil:
			return buf, total > limit, nil
		case bufio.ErrBufferFull:
			continue
		default:
			return nil, total > limit, err
		}
	}
}

// typeFromData finds "eventType":"x" in a data line, for streams that send
// no event: field.
func typeFromData(data []byte) string {
	const key = `"eventType"`
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(string(data[i+len(key):min(len(data), i+len(key)+200)]), " ")
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

// queueLen bounds the events waiting for the watch loop; past it the
// state is doubtful (overflow) and the next step is a full read.
const queueLen = 8192

// queue hands parsed events from the stream to the watch loop without ever
// blocking the stream.
type queue struct {
	ch       chan event
	overflow atomic.Bool
}

func newQueue() *queue { return &queue{ch: make(chan event, queueLen)} }

func (q *queue) put(ev event) {
	select {
	case q.ch <- ev:
	default:
		q.overflow.Store(true)
	}
}

// streamEvents holds one event stream open and queues each event, parsed,
// for the watch loop, starting with an attach marker: events may have been
// missed while no stream was open. It never blocks on the loop: when the
// queue is full, the event is dropped and overflow set.
func (s *Source) streamEvents(ctx context.Context, q *queue) (received bool, err error) {
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
	q.put(event{kind: evAttached, typ: "attached", replica: rep.name, at: time.Now()})
	err = readEvents(resp.Body, func(typ string, data []byte, truncated bool) {
		received = true
		label := typ
		if !isSubscribed(typ) && !ignored[typ] && typ != "instance_changed_event" && typ != "instance_health_changed_event" {
			label = "other"
		}
		eventsTotal.WithLabelValues(label).Inc()
		ev := parseEvent(typ, data, truncated)
		if ev.kind == evIgnore {
			return
		}
		s.log.Debug("event", "type", typ, "kind", ev.kind, "reason", ev.reason)
		q.put(ev)
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

func isSubscribed(typ string) bool {
	for _, t := range subscribed {
		if t == typ {
			return true
		}
	}
	return false
}
