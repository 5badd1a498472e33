/* kvgateway: flags in config.c (or --help); SIGTERM/SIGINT stop it cleanly. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "server/gateway/gateway.h"

int main(int argc, char **argv)
{
	static struct gateway g;
	char err[512] = "";
	int rv = gw_config_parse(&g.cfg, argc, argv, err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "kvgateway: %s\n", err);
		return 2;
	}
	enum log_level level;
	bool json;
	log_options_parse(g.cfg.log_level, g.cfg.log_format, &level, &json); /* validated above */
	log_setup(level, json, "gateway");
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC);

	tp_global_init();
	if (gw_start(&g, err, sizeof(err)) != 0) {
		LOG_E("cannot start: %s", err);
		return 1;
	}
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) != sizeof(si))
		;
	LOG_I("signal %u received, stopping", si.ssi_signo);
	gw_stop(&g);
	tp_global_shutdown();
	close(sigfd);
	return 0;
}
