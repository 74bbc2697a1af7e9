complete -c tickerd -l scgi -d 'SCGI listener: HOST:PORT, unix:PATH, or off' -r
complete -c tickerd -l scgi-socket-mode -d 'Mode of the SCGI Unix socket file, in octal' -r
complete -c tickerd -l http -d 'Built-in HTTP/1.1 listener: HOST:PORT, or off' -r
complete -c tickerd -l symbols -d 'The universe: SYM or SYM=PRICE, comma separated; the first is the default symbol' -r
complete -c tickerd -l symbols-file -d 'The universe from a file: one SYM [PRICE] [decimals=N] [field=value ...] a line' -r -F
complete -c tickerd -l fields -d 'Each symbol\'s record: NAME:TYPE comma separated, the first the headline' -r
complete -c tickerd -l decimals -d 'Decimals of a symbol whose precision is not given otherwise (0 to 9)' -r
complete -c tickerd -l initial-price -d 'Headline of a symbol listed without a price' -r
complete -c tickerd -l tick-ms -d 'Random-walk period (each tick moves every symbol once); 0: prices only from publishers' -r
complete -c tickerd -l heartbeat-s -d 'A comment line to idle streams every SECONDS; 0: off' -r
complete -c tickerd -l retry-ms -d 'Reconnection delay announced to browsers (the stream\'s retry: field)' -r
complete -c tickerd -l coalesce-ms -d 'At most one write per client per MS; 0: write as updates come' -r
complete -c tickerd -l max-hz -d 'The most events per second per symbol any stream may ask for with max_hz (a decimal, above 0, at most 1000); a stream asking more, or nothing, gets this. Default: no cap' -r
complete -c tickerd -l max-symbols-per-client -d 'Symbols one stream may ask for, at most 1024' -r
complete -c tickerd -l long-poll-s -d 'A long poll with nothing due in SECONDS is answered with the event it has' -r
complete -c tickerd -l max-clients -d 'Connections held at once (default: the open-file limit - 64); over it: 503' -r
complete -c tickerd -l request-timeout-s -d 'A request not complete in SECONDS is dropped' -r
complete -c tickerd -l max-scgi-header -d 'Cap on the SCGI netstring header' -r
complete -c tickerd -l max-publish-bytes -d 'Cap on a request body (a publish batch); over it: 413' -r
complete -c tickerd -l publish-token-file -d 'Enables POST /publish with the token in PATH (or set TICKERD_PUBLISH_TOKEN; tokens are never taken as arguments)' -r -F
complete -c tickerd -l entitlements -d 'Who may see what: a TOML file of symbol rights for anonymous, groups and users (README "Who may see what"); read at start, a bad file is refused with its line. Default: none, everyone sees every symbol' -r -F
complete -c tickerd -l trust-remote-user -d 'Take the caller\'s identity from the front-end\'s SCGI REMOTE_USER (never from the built-in HTTP listener); only for a front-end that authenticates and sets it' -r -f -a "true\t''
false\t''"
complete -c tickerd -l jwt-jwks -d 'Verify tokens (Authorization: Bearer, the --auth-cookie cookie or the access_token query) with the keys of this JSON Web Key Set file (README "Tokens (JWT)"); read at start, a bad file is refused. Default: none, tokens are not looked at' -r -F
complete -c tickerd -l jwt-issuer -d 'With --jwt-jwks: a token\'s iss must be this (default: iss is not checked)' -r
complete -c tickerd -l jwt-audience -d 'With --jwt-jwks: a token\'s aud must be or hold this (default: aud is not checked)' -r
complete -c tickerd -l jwt-leeway-s -d 'With --jwt-jwks: the clock skew allowed on a token\'s exp and nbf, in seconds' -r
complete -c tickerd -l auth-cookie -d 'With --jwt-jwks: also take the token from this cookie (default: none)' -r
complete -c tickerd -l redis -d 'Share the feed with other instances through Redis: HOST:PORT or unix:PATH (default: none, a feed of its own)' -r
complete -c tickerd -l redis-key -d 'Prefix of the feed\'s keys in Redis' -r
complete -c tickerd -l redis-maxlen -d 'Publishes the Redis stream keeps, about' -r
complete -c tickerd -l check -d 'Check the configuration and exit (0: it is valid); what a live upgrade asks the new binary'
complete -c tickerd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tickerd -s V -l version -d 'Print version'
