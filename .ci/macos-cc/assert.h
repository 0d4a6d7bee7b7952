/* Stand-in for the macOS SDK header (see TargetConditionals.h). */
#define assert(x) ((void)0)
