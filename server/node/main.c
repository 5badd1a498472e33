/* raftnode: one replica of a raftkv cluster. Flags: server/node/config.c (or --help). */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "server/node/config.h"
#include "server/node/node.h"
#include "server/transport/transport.h"

/* SIGBUS means a memory-mapped file could not be backed (a full disk, a truncated file).
 * Storage maps no files today (Berkeley DB's regions are in the heap), so this is a last
 * word in the log instead of a silent death; then the default action ends the process. */
static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	static const char msg[] =
		"raftnode: SIGBUS: a memory-mapped file could not be read or written (is the disk "
		"of the data directory full?)\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)w;
	(void)si;
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	static struct node_config cfg;
	char err[512] = "";
	int rv = config_parse(&cfg, argc, argv, err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "raftnode: %s\n", err);
		return 2;
	}
	enum log_level level;
	bool json;
	log_options_parse(cfg.log_level, cfg.log_format, &level, &json); /* validated above */
	log_setup(level, json, cfg.name);

	/* SIGTERM and SIGINT are read from a signalfd by the raft loop; block them in every
	 * thread, so before gRPC starts its own. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

	/* Snapshots use large short-lived buffers: a fixed mmap threshold returns them to the
	 * system when freed (glibc's sliding threshold would keep them in the heap for good). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	char fp[512];
	failpoint_describe(fp, sizeof(fp));
	if (fp[0] != '\0')
		LOG_W("%s", fp);

	tp_global_init();
	struct node *n;
	if (node_start(&cfg, sigfd, &n, err, sizeof(err)) != 0) {
		LOG_E("cannot start: %s", err);
		return 1;
	}
	rv = node_wait(n);
	tp_global_shutdown();
	close(sigfd);
	return rv;
}
