package nginx

import (
	"net/netip"
	"strconv"
)

// writeDefault appends exactly what the embedded template renders for v.
// text/template's reflection costs ~1 µs per field, too slow for 10,000
// virtual hosts; the equivalence test (fast_test.go) keeps the two
// identical, so the template stays the documented format and the override
// point.
func writeDefault(b []byte, v *view) []byte {
	b = append(b, "# Rendered by proxymatic-reload from services.yaml. Do not edit: the next\n# change to services.yaml overwrites it."...)
	if v.User != "" {
		b = append(b, "\nuser "...)
		b = append(b, v.User...)
		if v.Group != "" {
			b = append(b, ' ')
			b = append(b, v.Group...)
		}
		b = append(b, ';')
	}
	b = append(b, `
# Supervised in the foreground; every path is under the run dir (the prefix),
# none from the distribution's build.
daemon off;
worker_processes auto;
worker_rlimit_nofile `...)
	b = strconv.AppendInt(b, int64(v.RlimitNofile), 10)
	b = append(b, ";\npid "...)
	b = append(b, v.PidFile...)
	b = append(b, `;
error_log stderr warn;

events {
    worker_connections `...)
	b = strconv.AppendInt(b, int64(v.WorkerConnections), 10)
	b = append(b, `;
}

http {
    # Every request is logged to nginx's stdout, which the reload agent
    # forwards to its own log (as the original image logged every request).
    log_format vhost '$host $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"';
    access_log /dev/stdout vhost;
    server_tokens off;
    # Longer than the idle timeout of a cloud load balancer in front (the
    # original's 1200 s ELB setting + 100 s): the load balancer, not nginx,
    # must close an idle keep-alive connection, or a request it sends as
    # nginx closes fails with a 502.
    keepalive_timeout 1300s;
    # Text responses are compressed, as the original image did.
    gzip on;
    gzip_comp_level 5;
    gzip_min_length 256;
    gzip_proxied any;
    gzip_vary on;
    gzip_types application/atom+xml application/javascript application/json application/rss+xml application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css text/javascript text/plain text/x-component text/xml;
    client_body_temp_path `...)
	b = append(b, v.ClientBodyTemp...)
	b = append(b, ";\n    proxy_temp_path "...)
	b = append(b, v.ProxyTemp...)
	b = append(b, ";\n    fastcgi_temp_path "...)
	b = append(b, v.FastCGITemp...)
	b = append(b, ";\n    uwsgi_temp_path "...)
	b = append(b, v.UWSGITemp...)
	b = append(b, ";\n    scgi_temp_path "...)
	b = append(b, v.SCGITemp...)
	b = append(b, ";\n    server_names_hash_max_size "...)
	b = strconv.AppendInt(b, int64(v.NamesHashMaxSize), 10)
	b = append(b, ";\n    server_names_hash_bucket_size "...)
	b = strconv.AppendInt(b, int64(v.NamesHashBucketSize), 10)
	b = append(b, ";\n    default_type text/plain;\n    client_max_body_size 0;"...)
	if v.ProxyProtocol {
		b = append(b, `
    # Every connection must start with a PROXY header, so only the load
    # balancer in front can connect: its word on the client address is taken.
    real_ip_header proxy_protocol;
    set_real_ip_from 0.0.0.0/0;
    set_real_ip_from ::/0;`...)
	}
	b = append(b, `

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    # Keep the scheme a TLS-terminating load balancer reported.
    map $http_x_forwarded_proto $forwarded_proto {
        default $http_x_forwarded_proto;
        ''      $scheme;
    }

    proxy_http_version 1.1;
    # The Host header as the client sent it, port included.
    proxy_set_header Host $http_host;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $forwarded_proto;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_connect_timeout 3s;
    proxy_send_timeout 300s;
    proxy_read_timeout 300s;
    proxy_next_upstream error timeout;
    # Responses reach the client as the server sends them (streams, server-
    # sent events, long polls), not once nginx has buffered them.
    proxy_buffering off;

    # Unknown hosts get 503; /_status tells a load balancer nginx is up.
    server {
        listen `...)
	b = strconv.AppendInt(b, int64(v.Port), 10)
	b = append(b, " default_server"...)
	if v.ProxyProtocol {
		b = append(b, " proxy_protocol"...)
	}
	b = append(b, `;
        server_name _;
        location = /_status {
            return 200 "OK\n";
        }
        location / {
            return 503;
        }
    }`...)
	for i := range v.VHosts {
		vh := &v.VHosts[i]
		b = append(b, '\n')
		if len(vh.Servers) > 0 {
			b = append(b, "\n    upstream "...)
			b = append(b, vh.Upstream...)
			b = append(b, " {\n        least_conn;"...)
			for j := range vh.Servers {
				s := &vh.Servers[j]
				b = append(b, "\n        server "...)
				b = netip.AddrPortFrom(s.srv.IP, uint16(s.srv.Port)).AppendTo(b)
				if s.srv.Weight == 0 {
					b = append(b, " down"...)
				} else {
					b = append(b, " weight="...)
					b = strconv.AppendInt(b, int64(Weight(s.srv.Weight)), 10)
				}
				if s.srv.MaxConn != 0 {
					b = append(b, " max_conns="...)
					b = strconv.AppendInt(b, int64(s.srv.MaxConn), 10)
				}
				b = append(b, ';')
			}
			b = append(b, "\n    }\n"...)
		}
		b = append(b, "\n    server {\n        listen "...)
		b = strconv.AppendInt(b, int64(v.Port), 10)
		if v.ProxyProtocol {
			b = append(b, " proxy_protocol"...)
		}
		b = append(b, ";\n        server_name "...)
		b = append(b, vh.Host...)
		b = append(b, ";\n        location / {"...)
		if len(vh.Servers) > 0 {
			b = append(b, "\n            proxy_pass http://"...)
			b = append(b, vh.Upstream...)
			b = append(b, ';')
		} else {
			b = append(b, "\n            # No servers: answer 503 until some appear.\n            return 503;"...)
		}
		b = append(b, "\n        }\n    }"...)
	}
	return append(b, "\n}\n"...)
}
