/* Reports what stdout looks like as a terminal: isatty, tcgetattr and
 * TIOCGWINSZ results, and the window size. Identical output natively and in
 * an isle means the isle answers as the host's terminal does. */
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

int main(void)
{
	struct winsize ws = { 0 };
	struct termios t;
	int attr = tcgetattr(1, &t);
	int size = ioctl(1, TIOCGWINSZ, &ws);
	printf("isatty=%d tcgetattr=%d winsize=%d rows=%d cols=%d\n", isatty(1), attr, size,
	       size == 0 ? ws.ws_row : -1, size == 0 ? ws.ws_col : -1);
	return 0;
}
