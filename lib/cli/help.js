'use strict'

// The manual of the dist-lock command, written once: `dist-lock --help`
// prints HELP, and docs/cli.md holds the same text between its
// "dist-lock --help" markers (a test keeps the two equal).

const { DEFAULT_REDIS_URL } = require('./common.js')

/** The full manual (`dist-lock --help`). */
const HELP = `\
NAME
    dist-lock - run a command while holding a distributed lock in Redis

SYNOPSIS
    dist-lock run [options] <resource> -- <command> [<arg>...]
    dist-lock status [options] <resource>
    dist-lock help | --help | -h
    dist-lock --version

DESCRIPTION
    dist-lock run takes the lock of <resource> in Redis, runs <command>
    with its arguments, releases the lock when the command exits, and exits
    with the command's exit status. While the lock is held, no other process
    using the same Redis server and key prefix can take it: another
    "dist-lock run" of the same resource waits until it is free (or gives
    up, with --wait or --no-wait).

    The lock expires in Redis after its ttl unless extended. dist-lock
    extends it every ttl/3 while the command runs, so the command may run
    for as long as it needs; if dist-lock itself dies, the lock expires
    within one ttl.

    The command runs with dist-lock's standard input, output and error, and
    its environment plus the variables listed under ENVIRONMENT. Options go
    before "--"; everything after "--" is the command and its arguments.

COMMANDS
    run <resource> -- <command> [<arg>...]
        Take the lock of <resource>, run the command, release the lock.

    status <resource>
        Print "locked" or "free" on standard output. Exit status 0 when
        free, 1 when locked, so that "dist-lock status r && ..." runs only
        when r is free. The answer may be out of date by the time it is read.

    help
        Print this help.

OPTIONS
    --redis <url>
        The Redis server, as a URL that the dist-lock library accepts, for
        example redis://[[user]:password@]host[:port][/db] or
        redis+unix:///path/to/socket. Default: see ENVIRONMENT.

    --key-prefix <prefix>
        Prefix of the lock's key in Redis; the key is <prefix><resource>.
        Default: "lock:".

    --ttl <ms>
        (run) Time to live of the lock in Redis, in milliseconds. Default:
        30000. The lock is extended every ttl/3 while the command runs.

    --wait <ms>
        (run) Give up with exit status 75 if the lock is not acquired within
        <ms> milliseconds. Default: wait as long as it takes.

    --no-wait
        (run) Try once; give up with exit status 75 if the lock is held.

    --fair
        (run) Wait in line: waiting processes get the lock in the order in
        which they started waiting.

    --kill-after <ms>
        (run) When the lock is lost, the command gets SIGTERM, and SIGKILL
        if it is still running <ms> milliseconds later. Default: 10000.

    -q, --quiet
        Print no messages on standard error (usage errors are still
        printed).

    -h, --help
        Print this help and exit.

    --version
        Print the version of dist-lock and exit.

    An option's value may also be given as --ttl=5000. Times are whole
    numbers of milliseconds.

LOST LOCK
    The lock is lost when an extension finds its key gone or held by someone
    else, or when Redis cannot be reached to extend it before it expires.
    dist-lock then sends SIGTERM to the command, SIGKILL after --kill-after
    milliseconds if it is still running, and exits with status 76 once the
    command has exited, whatever the command's own status.

SIGNALS
    SIGINT, SIGTERM and SIGHUP received while the command runs are passed on
    to the command (to its process only, not to processes it started);
    SIGINT is not passed on when standard input is a terminal, since
    Ctrl-C there already reaches the command.
    dist-lock waits for the command to exit, releases the lock and exits
    with the command's status. Received while waiting for the lock, they
    stop the wait: dist-lock exits with status 130, 143 or 129 without
    running the command, and leaves nothing locked.
    If the parent process of dist-lock goes away (npx, for one, passes no
    signal on), dist-lock notices within about a second and acts as for
    SIGTERM, sending SIGKILL --kill-after ms later if the command still runs.

EXIT STATUS
    run:
    n        The command's exit status.
    128+n    The command was killed by signal n (143 for SIGTERM, 137 for
             SIGKILL).
    64       Usage error: bad command line or Redis URL.
    69       Redis unavailable, or Redis answered with an error.
    70       Internal error of dist-lock (please report it).
    75       Lock not acquired: held by someone else (--no-wait), or not
             free within --wait milliseconds.
    76       Lock lost while the command ran; the command got SIGTERM.
    126      The command could not be started (not executable, permission
             denied).
    127      Command not found.
    129, 130, 143
             SIGHUP, SIGINT or SIGTERM received while waiting for the lock.

    status:
    0        The resource is free.
    1        The resource is locked.
    64, 69, 70
             As for run.

    A command may itself exit with one of these numbers; the message on
    standard error (unless --quiet) tells the cases apart.

ENVIRONMENT
    DIST_LOCK_REDIS_URL
        The Redis URL, when --redis is not given. A password here is not
        shown in process listings, unlike one in --redis.

    REDIS_URL
        The Redis URL, when neither --redis nor DIST_LOCK_REDIS_URL is
        given. Without any of them: ${DEFAULT_REDIS_URL}.

    Set for the command by run:

    DIST_LOCK_RESOURCE
        The resource name.

    DIST_LOCK_ID
        The lock's id, its value in Redis.

    DIST_LOCK_FENCING_TOKEN
        The lock's fencing token: a decimal integer that increases with
        every grant of the resource. Give it to a store that refuses writes
        with a lower token than it has seen.

EXAMPLES
    A cron job on several hosts that must not overlap (skip when busy):
        dist-lock run --no-wait -q nightly-report -- ./make-report.sh

    A deploy step that waits up to 10 minutes for another deploy:
        dist-lock run --wait 600000 deploy-prod -- ./deploy.sh production

    Only start maintenance when no deploy holds the lock:
        dist-lock status deploy-prod && ./maintenance.sh
`

/** The short usage, printed after a command-line error. */
const USAGE = `\
usage: dist-lock run [options] <resource> -- <command> [<arg>...]
       dist-lock status [options] <resource>
       dist-lock --help`

module.exports = { HELP, USAGE }
