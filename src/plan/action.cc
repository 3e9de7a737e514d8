#include "plan/action.h"

namespace filesync::plan {

const char* ActionKindName(ActionKind kind) {
  switch (kind) {
    case ActionKind::kDelete:
      return "delete";
    case ActionKind::kMove:
      return "move";
    case ActionKind::kCreateFolder:
      return "create_folder";
    case ActionKind::kUpload:
      return "upload";
  }
  return "unknown";
}

}  // namespace filesync::plan
