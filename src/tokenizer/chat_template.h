// Moved to template/chat_template.h; kept only until src/runtime/chat_session.h includes the new path.
#pragma once

#include "template/chat_template.h"
