/* The floor for any sender: one sd_journal_send() of a 2 KB mail entry. */
#include <string.h>
#include <systemd/sd-journal.h>

int main(void) {
	char body[2049];
	memset(body, 'x', sizeof body - 1);
	body[sizeof body - 1] = 0;
	return sd_journal_send("MESSAGE=mail from root to root", "MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172",
	                       "MAIL_RCPT=root", "MAIL_RAW=%s", body, NULL) < 0;
}
