# Sourced by scripts that start a hub: free_port prints a TCP port on
# 127.0.0.1 that nothing listens on (no python3 needed: bash's /dev/tcp).
free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 40000 ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
