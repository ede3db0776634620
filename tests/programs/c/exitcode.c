/* Exits with status atoi(argv[1]) (0 without an argument) via exit(). */
#include <stdlib.h>

int main(int argc, char **argv)
{
	exit(argc > 1 ? atoi(argv[1]) : 0);
}
